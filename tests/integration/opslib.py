"""What the tests of long operations (operations.list, operations.cancel)
share: a banger command started in the test's namespace and waited on until
its operation is in flight, then ended by `banger operations cancel` from a
second client or by Ctrl-C, with the checks of what the first client says
then. env: any of the tests' environments (ns, env, banger, json,
daemon_log)."""
import contextlib
import os
import signal
import subprocess
import time

from lifecycle import BANGER


def operations(env):
    return env.json("operations")["operations"]


def spawn(env, *args):
    # ip netns exec execs banger: the Popen pid is the CLI's own.
    return subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), *args], env=env.env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(what, fn, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def start_until(env, args, ready, what, timeout=120):
    """Start `banger ARGS` and poll ready() until it returns something true:
    the CLI process and that. When the process ends first or timeout passes,
    it is killed and the test fails, saying what it waited for."""
    cli = spawn(env, *args)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and cli.poll() is None:
        v = ready()
        if v:
            return cli, v
        time.sleep(0.05)
    cli.kill()
    raise AssertionError((f"{what} never came", cli.communicate(), env.daemon_log()[-3000:]))


@contextlib.contextmanager
def reaped(*procs):
    """The with block's processes, killed at its end if they still run (a
    failed check leaves none behind)."""
    try:
        yield
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def cancel(env, cli, op, timeout=120):
    """`banger operations cancel ID` from a second client, then the end of
    cli, whose operation op is: it must exit 3 saying op was cancelled. The
    cancel's process, cli's stdout and stderr."""
    p = env.banger("operations", "cancel", str(op["id"]))
    out, err = cli.communicate(timeout=timeout)
    assert cli.returncode == 3, (cli.returncode, out, err, env.daemon_log()[-3000:])
    assert f"operation {op['id']} ({op['kind']}) was cancelled" in err, err
    return p, out, err


def interrupt(env, cli, op, timeout=120):
    """Ctrl-C (SIGINT) to cli, whose operation op is: it must exit 128+SIGINT
    saying it cancels op and rolls back. cli's stdout and stderr."""
    os.kill(cli.pid, signal.SIGINT)
    out, err = cli.communicate(timeout=timeout)
    assert cli.returncode == 128 + signal.SIGINT, (cli.returncode, out, err, env.daemon_log()[-3000:])
    assert f"cancelling operation {op['id']}, rolling back" in err, err
    return out, err
