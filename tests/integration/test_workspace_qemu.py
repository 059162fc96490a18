"""Workspaces end to end on a QEMU guest: `vm run DIR -- COMMAND` copies a
git work tree (tracked and untracked files, never ignored ones, and a .git)
and passes the command's exit code; `vm workspace export` brings guest edits
back as a patch, `--apply` applies it to the host's checkout or refuses
naming the conflicting paths; `vm workspace sync` copies host changes again.
Real CLI, daemon, helper, git and guest, in a namespace this test creates.
The test image has no make, so the issue's `vm run ./repo -- make test` is
`vm run ./repo -- ./check.sh` here (a tracked script: its mode comes too).
The test image has no git: the guest's .git is checked as files. The
repository has a submodule (a local repository added with `git submodule
add`): its files and a .git of its own arrive too."""
import os
import pathlib
import subprocess

import pytest

from lifecycle import BANGER, env_with_test_image

VM = "ws"
SIZES = ("--image", "test", "--vmm", "qemu", "--vcpu", "1", "--memory", "256M", "--disk-size", "128M")


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "HOME": str(repo.parent), "GIT_CONFIG_NOSYSTEM": "1"}).stdout


def make_lib(parent):
    """The repository the work tree has as a submodule."""
    lib = parent / "lib"
    lib.mkdir()
    git(lib, "init", "-q", "-b", "main")
    (lib / "lib.txt").write_text("from the submodule\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-q", "-m", "lib first")
    return lib


def make_repo(parent):
    """tracked, untracked and ignored files; an executable script; a
    submodule (libdir)."""
    repo = parent / "proj"
    repo.mkdir()
    (parent / ".gitconfig").write_text("[user]\n\tname = Ada Host\n\temail = ada@host.example\n")
    git(repo, "init", "-q", "-b", "main")
    lib = make_lib(parent)
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "libdir")
    (repo / ".gitignore").write_text("*.log\nbuild/\n")
    (repo / "tracked.txt").write_text("one\ntwo\nthree\n")
    (repo / "other.txt").write_text("other\n")
    (repo / "conflict.txt").write_text("base\n")
    (repo / "sub").mkdir()
    (repo / "sub/deep.txt").write_text("deep\n")
    script = repo / "check.sh"
    script.write_text("#!/bin/sh\npwd\nfind . -path ./.git -prune -o -type f -print | sort\n"
                      "test -f .git/HEAD && echo has-git\ngrep -h 'Ada Host' .git/config\nexit 3\n")
    script.chmod(0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    git(repo, "tag", "v1")
    (repo / "tracked.txt").write_text("one\ntwo\nthree\nfour (uncommitted)\n")
    (repo / "untracked.txt").write_text("new\n")
    (repo / "debug.log").write_text("ignored\n")
    (repo / "build").mkdir()
    (repo / "build/out.bin").write_text("ignored too\n")
    return repo


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = env_with_test_image(tmp_path_factory, "workspace-qemu")
    try:
        e.repo = make_repo(e.tmp / "home")
        yield e
    finally:
        e.teardown()


def test_run_copies_the_work_tree_and_passes_the_exit_code(env):
    p = env.banger("vm", "run", *SIZES, "--rm", str(env.repo), "--", "./check.sh", check=False)
    assert p.returncode == 3, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "/root/proj"
    files = set(lines[1:])
    for f in ("./tracked.txt", "./untracked.txt", "./other.txt", "./sub/deep.txt", "./.gitignore", "./check.sh",
              "./libdir/lib.txt"):
        assert f in files, p.stdout
    assert "./debug.log" not in files and not any(f.startswith("./build") for f in files), p.stdout
    assert "has-git" in lines and any("Ada Host" in l for l in lines), p.stdout
    assert "workspace:" in p.stderr


def test_run_branch_copies_the_commit(env):
    p = env.banger("vm", "run", *SIZES, "--rm", "--branch", "v1", str(env.repo), "--", "sh", "-c",
                   "cat tracked.txt; test -e untracked.txt && echo untracked-arrived; cat .git/HEAD")
    assert p.stdout.startswith("one\ntwo\nthree\n") and "four" not in p.stdout, p.stdout
    assert "untracked-arrived" not in p.stdout


@pytest.fixture(scope="module")
def vm(env):
    env.banger("vm", "create", "--name", VM, *SIZES, "--workspace", str(env.repo))
    return VM


def guest(env, script, check=True):
    return env.banger("vm", "exec", VM, "-w", "/root/proj", "--", "sh", "-c", script, check=check)


def test_guest_git_sees_what_the_host_saw(env, vm, tmp_path):
    """The image has no git, so the guest's copy comes back and host git reads it."""
    env.banger("vm", "cp", f"{VM}:/root/proj", str(tmp_path))
    copy = tmp_path / "proj"
    assert git(copy, "log", "--format=%s").split("\n")[0] == "first"
    assert git(copy, "status", "--porcelain").splitlines() == git(env.repo, "status", "--porcelain").splitlines()
    assert git(copy, "diff") == git(env.repo, "diff")
    assert git(copy, "config", "user.email").strip() == "ada@host.example"
    assert git(copy, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"


def test_submodule_arrives_with_its_git(env, vm, tmp_path):
    """The submodule's files arrive, and enough of its .git that git in the
    guest sees it checked out at its commit and clean, as the host does."""
    assert guest(env, "cat libdir/lib.txt").stdout == "from the submodule\n"
    env.banger("vm", "cp", f"{VM}:/root/proj", str(tmp_path))
    copy = tmp_path / "proj"
    assert git(copy / "libdir", "log", "--format=%s").strip() == "lib first"
    assert git(copy / "libdir", "status", "--porcelain") == ""
    assert git(copy / "libdir", "rev-parse", "HEAD") == git(env.repo / "libdir", "rev-parse", "HEAD")
    assert git(copy, "status", "--porcelain", "--ignore-submodules=none") == \
        git(env.repo, "status", "--porcelain", "--ignore-submodules=none")
    assert git(copy, "submodule", "status") == git(env.repo, "submodule", "status")
    assert not (copy / ".git/modules").exists()


def test_export_and_apply(env, vm):
    guest(env, "echo five >> tracked.txt; echo fresh > added.txt; rm other.txt; echo x > junk.log")
    p = env.banger("vm", "workspace", "export", VM)
    assert "diff --git a/tracked.txt b/tracked.txt" in p.stdout and "+five" in p.stdout
    assert "new file mode" in p.stdout and "b/added.txt" in p.stdout
    assert "deleted file mode" in p.stdout and "a/other.txt" in p.stdout
    assert "junk.log" not in p.stdout
    # The host's own uncommitted line was sent, so it is no change of the guest's.
    assert "+four" not in p.stdout
    # Against the commit instead: the host's uncommitted line counts too.
    p2 = env.banger("vm", "workspace", "export", VM, "--base-commit", "v1")
    assert "+four (uncommitted)" in p2.stdout and "+five" in p2.stdout, p2.stdout
    p2 = env.banger("vm", "workspace", "export", VM, "--base-commit", "nosuchref", check=False)
    assert p2.returncode == 1 and "nosuchref" in p2.stderr, p2.stderr
    out = env.tmp / "changes.patch"
    env.banger("vm", "workspace", "export", VM, "-o", str(out))
    assert out.read_text() == p.stdout
    env.banger("vm", "workspace", "export", VM, "--apply")
    assert (env.repo / "tracked.txt").read_text() == "one\ntwo\nthree\nfour (uncommitted)\nfive\n"
    assert (env.repo / "added.txt").read_text() == "fresh\n"
    assert not (env.repo / "other.txt").exists()


def test_conflicting_apply_is_refused(env, vm):
    guest(env, "echo guest > conflict.txt")
    (env.repo / "conflict.txt").write_text("host\n")
    before = {f: (env.repo / f).read_text() for f in ("tracked.txt", "conflict.txt")}
    p = env.banger("vm", "workspace", "export", VM, "--apply", check=False)
    assert p.returncode == 1, p.stderr
    assert "refused" in p.stderr and "conflict.txt" in p.stderr, p.stderr
    assert {f: (env.repo / f).read_text() for f in before} == before


def test_sync_copies_only_host_changes(env, vm):
    (env.repo / "sub/deep.txt").write_text("deeper\n")
    (env.repo / "synced.txt").write_text("synced\n")
    (env.repo / "untracked.txt").unlink()
    (env.repo / "later.log").write_text("ignored\n")
    p = env.banger("vm", "workspace", "sync", VM)
    assert "removed" in p.stderr, p.stderr
    out = guest(env, "cat sub/deep.txt synced.txt conflict.txt; ls").stdout
    assert out.startswith("deeper\nsynced\nhost\n"), out
    names = out.split()
    assert "untracked.txt" not in names and "later.log" not in names, out
    # Changed (deep, synced, conflict, and the guest's own edits that were
    # applied on the host) and nothing else; a second sync copies nothing.
    p = env.banger("vm", "workspace", "sync", VM)
    assert "0 files copied, 0 removed" in p.stderr, p.stderr
    # The guest now matches the host: nothing to export.
    assert env.banger("vm", "workspace", "export", VM).stdout == ""


def test_bad_paths_are_refused(env, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    for path, why in ((tmp_path / "missing", "is not a directory"), (plain, "is not a git work tree"),
                      (env.repo / "sub", "is inside the git work tree")):
        p = env.banger("vm", "run", *SIZES, str(path), "--", "true", check=False)
        assert p.returncode == 2 and why in p.stderr, p.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    subprocess.run(["git", "init", "-q", str(empty)], check=True)
    p = env.banger("vm", "run", *SIZES, str(empty), "--", "true", check=False)
    assert p.returncode == 2 and "has no commit yet" in p.stderr, p.stderr
    p = env.banger("vm", "run", *SIZES, "--branch", "nosuchref", str(env.repo), "--", "true", check=False)
    assert p.returncode == 2 and "nosuchref names no commit" in p.stderr, p.stderr
    p = env.banger("vm", "workspace", "export", "nosuchvm", check=False)
    assert p.returncode == 1


def test_delete_forgets_the_workspace(env, vm):
    """What the host keeps of a workspace goes with its VM; a vm run --rm
    left none behind either."""
    wdir = env.state / "workspaces"
    vm_id = env.json("vm", "show", VM)["id"]
    assert [d.name for d in wdir.iterdir()] == [vm_id]
    env.banger("vm", "delete", VM)
    assert list(wdir.iterdir()) == []
