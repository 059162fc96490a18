/* SPDX-License-Identifier: MIT */
/* banger ssh-config install|uninstall|show: plain OpenSSH (ssh, scp, sftp,
 * rsync) to NAME.vm. ~/.ssh/config gets a marked block at its top that
 * includes ~/.ssh/banger.conf, whose "Host *.vm" block names banger's key,
 * its known_hosts and 'banger ssh-proxy %h %p' as ProxyCommand: the proxy
 * asks the daemon for the VM's address, so no resolver set-up is needed.
 * Nothing else in the user's file changes, and uninstall gives it back byte
 * for byte. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd-ssh-config.h"
#include "error.h"
#include "fs-util.h"
#include "ssh-config-block.h"
#include "ssh-config-home.h"
#include "string-util.h"
#include "system-install.h"

static const char file_header[] =
        "# Written by 'banger ssh-config install'; 'banger ssh-config uninstall' removes it.\n";

static void install_help(void) {
        printf("Usage: banger ssh-config install [--json]\n"
               "\n"
               "Let the stock OpenSSH client reach VMs as NAME.vm: 'ssh root@web.vm', scp, sftp\n"
               "and rsync. Writes ~/.ssh/" SSH_BANGER_FILE " (a 'Host *.vm' block with banger's key,\n"
               "its known_hosts and 'banger ssh-proxy' as ProxyCommand, which finds the VM\n"
               "through the daemon: no DNS set-up needed) and adds a marked Include of it at\n"
               "the top of ~/.ssh/config (created 0600 when missing; otherwise only that block\n"
               "is added). Running it again changes nothing. With --system the proxy uses the\n"
               "system daemon and its key.\n");
}

static void uninstall_help(void) {
        printf("Usage: banger ssh-config uninstall [--json]\n"
               "\n"
               "Remove the block 'banger ssh-config install' added to ~/.ssh/config, leaving\n"
               "the file byte for byte as it was (or removing it, and ~/.ssh, when install\n"
               "created them and nothing else was added since), and ~/.ssh/" SSH_BANGER_FILE ".\n"
               "A block that was edited is left alone, with a message.\n");
}

static void show_help(void) {
        printf("Usage: banger ssh-config show [--json]\n"
               "\n"
               "Show whether ~/.ssh/config includes banger's file, whether that file is\n"
               "current, where banger's key and known_hosts are, and the text install writes.\n");
}

static int fail(const char *verb, int r) {
        const char *m = error_last_message();
        fprintf(stderr, "banger ssh-config %s: %s\n", verb, m ? m : strerror(-r));
        return EXIT_FAIL;
}

static int check_path(const char *what, const char *path) {
        if (ssh_path_is_safe(path))
                return 0;
        return error_setf(-EINVAL,
                          "the path of %s, %s, has a character ssh_config cannot carry safely (use letters, digits,"
                          " spaces and / . _ - + , @ = : only)",
                          what, path);
}

/* ~/.ssh/banger.conf as this banger writes it. */
static int render_file(Cli *cli, char **ret) {
        _cleanup_free_ char *key = path_join(cli->paths.state_dir, "ssh/id_ed25519");
        _cleanup_free_ char *kh = path_join(cli->paths.state_dir, "ssh/known_hosts");
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (!key || !kh || n <= 0)
                return n <= 0 ? error_setf(-errno, "cannot find the banger binary: %s", strerror(errno)) : -ENOMEM;
        self[n] = '\0';
        int r = check_path("banger's key", key);
        if (r >= 0)
                r = check_path("banger's known_hosts", kh);
        if (r >= 0)
                r = check_path("the banger binary", self);
        if (r >= 0 && cli->socket_override)
                r = check_path("the daemon socket", cli->socket_override);
        if (r < 0)
                return r;
        _cleanup_free_ char *global = NULL;
        if (asprintf(&global, "%s%s%s%s", cli->system ? " --system" : "", cli->socket_override ? " --socket '" : "",
                     cli->socket_override ?: "", cli->socket_override ? "'" : "") < 0)
                return -ENOMEM;
        if (asprintf(ret,
                     "%s"
                     "# Rewritten by every install: do not edit. VMs answer to ssh, scp, sftp and rsync\n"
                     "# as NAME.vm; 'banger ssh-proxy' finds each one through the daemon.\n"
                     "Host *.vm\n"
                     "    User root\n"
                     "    IdentityFile \"%s\"\n"
                     "    IdentitiesOnly yes\n"
                     "    UserKnownHostsFile \"%s\"\n"
                     "    StrictHostKeyChecking accept-new\n"
                     "    ProxyCommand '%s'%s ssh-proxy %%h %%p\n",
                     file_header, key, kh, self, global) < 0)
                return -ENOMEM;
        return 0;
}

/* The config file's bytes with the block for include; *ret stays NULL when
 * they would not change. */
static int config_with_block(const SshHome *h, const char *include, char **ret, size_t *ret_len) {
        const char *data = h->cfg_data ?: "", *why = NULL;
        _cleanup_(ssh_block_done) SshBlock b = {};
        int r = ssh_block_find(data, h->cfg_len, &b, &why);
        if (r == -EBADMSG)
                return error_setf(r,
                                  "the banger block in %s was edited (%s): fix or remove it by hand, then run"
                                  " this again",
                                  h->cfg_path, why);
        if (r < 0)
                return r;
        if (r > 0 && streq(b.include, include))
                return 0;
        SshBlockOrigin origin = r > 0            ? b.origin
                                : h->cfg_exists  ? SSH_BLOCK_FILE_EXISTED
                                : h->ssh_created ? SSH_BLOCK_CREATED_DIR
                                                 : SSH_BLOCK_CREATED_FILE;
        bool crlf =
                r > 0 ? ssh_config_uses_crlf(data + b.start, b.end - b.start) : ssh_config_uses_crlf(data, h->cfg_len);
        _cleanup_free_ char *block = NULL;
        size_t block_len = 0;
        r = ssh_block_render(include, origin, crlf, &block, &block_len);
        if (r < 0)
                return r;
        return ssh_config_splice(data, h->cfg_len, b.start, b.end, block, block_len, ret, ret_len);
}

static void report(Cli *cli, const char *verb, const SshHome *h, SysChange cfg, SysChange file) {
        _cleanup_free_ char *file_path = path_join(h->ssh_dir, SSH_BANGER_FILE);
        if (cli->json) {
                json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "config", h->cfg_path, "config_change",
                                      sys_change_to_string(cfg), "file", file_path ?: "", "file_change",
                                      sys_change_to_string(file));
                cli_print_json(j);
                json_decref(j);
                return;
        }
        if (cfg == SYS_UNCHANGED && file == SYS_UNCHANGED) {
                printf("Nothing changed: %s already includes %s.\n", h->cfg_path, file_path);
                return;
        }
        if (cfg == SYS_ABSENT && file == SYS_ABSENT) {
                printf("Nothing to remove: %s has no banger block.\n", h->cfg_path);
                return;
        }
        printf("%-10s %s%s%s\n%-10s %s\n", sys_change_to_string(cfg), h->cfg_path, h->cfg_target ? " -> " : "",
               h->cfg_target ?: "", sys_change_to_string(file), file_path);
        if (streq(verb, "install"))
                printf("Try: ssh root@NAME.vm (scp, sftp and rsync work too)\n");
}

static int ssh_config_install(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "ssh-config install", install_help, argc, argv, 0, 0);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        error_clear();
        _cleanup_free_ char *text = NULL, *own = NULL, *include = NULL, *cfg = NULL;
        size_t own_len = 0, cfg_len = 0;
        if ((r = render_file(cli, &text)) < 0)
                return fail("install", r);
        _cleanup_(ssh_home_done) SshHome h = { .home_fd = -EBADF, .ssh_fd = -EBADF, .cfg_dir_fd = -EBADF };
        if ((r = ssh_home_open(true, &h)) < 0)
                return fail("install", r);
        if (!(include = path_join(h.ssh_dir, SSH_BANGER_FILE)))
                return fail("install", -ENOMEM);
        r = check_path("~/.ssh", include);
        if (r >= 0)
                r = ssh_home_read_own_file(&h, file_header, &own, &own_len);
        bool had_file = r > 0;
        if (r >= 0)
                r = config_with_block(&h, include, &cfg, &cfg_len);
        SysChange file_change = !had_file ? SYS_CREATED : streq(own, text) ? SYS_UNCHANGED : SYS_UPDATED;
        SysChange cfg_change = !cfg ? SYS_UNCHANGED : h.cfg_exists ? SYS_UPDATED : SYS_CREATED;
        /* banger.conf first: the Include never names a missing file. */
        if (r >= 0 && file_change != SYS_UNCHANGED)
                r = ssh_home_write_own_file(&h, text, strlen(text));
        if (r >= 0 && cfg)
                r = ssh_home_write_config(&h, cfg, cfg_len);
        if (r < 0) {
                if (h.ssh_created) { /* leave no half-made ~/.ssh behind */
                        (void) ssh_home_remove_own_file(&h);
                        (void) ssh_home_remove_ssh_dir(&h);
                }
                return fail("install", r);
        }
        report(cli, "install", &h, cfg_change, file_change);
        return EXIT_OK;
}

static int ssh_config_uninstall(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "ssh-config uninstall", uninstall_help, argc, argv, 0, 0);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        error_clear();
        _cleanup_(ssh_home_done) SshHome h = { .home_fd = -EBADF, .ssh_fd = -EBADF, .cfg_dir_fd = -EBADF };
        if ((r = ssh_home_open(false, &h)) < 0)
                return fail("uninstall", r);
        _cleanup_(ssh_block_done) SshBlock b = {};
        const char *why = NULL;
        r = h.cfg_exists ? ssh_block_find(h.cfg_data, h.cfg_len, &b, &why) : 0;
        if (r == -EBADMSG)
                (void) error_setf(r, "the banger block in %s was edited (%s): remove it by hand", h.cfg_path, why);
        if (r < 0)
                return fail("uninstall", r);
        SysChange cfg_change = SYS_ABSENT, file_change = SYS_ABSENT;
        if (r > 0) {
                _cleanup_free_ char *rest = NULL;
                size_t rest_len = 0;
                r = ssh_config_splice(h.cfg_data, h.cfg_len, b.start, b.end, NULL, 0, &rest, &rest_len);
                bool drop = r >= 0 && b.origin != SSH_BLOCK_FILE_EXISTED && rest_len == 0;
                if (r >= 0)
                        r = drop ? ssh_home_remove_config(&h) : ssh_home_write_config(&h, rest, rest_len);
                if (r < 0)
                        return fail("uninstall", r);
                cfg_change = drop && !h.cfg_target ? SYS_REMOVED : SYS_UPDATED;
        }
        _cleanup_free_ char *own = NULL;
        size_t own_len = 0;
        r = ssh_home_read_own_file(&h, file_header, &own, &own_len);
        if (r > 0) {
                file_change = SYS_REMOVED;
                r = ssh_home_remove_own_file(&h);
        }
        if (r < 0)
                return fail("uninstall", r);
        if (cfg_change == SYS_REMOVED && b.origin == SSH_BLOCK_CREATED_DIR && (r = ssh_home_remove_ssh_dir(&h)) < 0)
                return fail("uninstall", r);
        report(cli, "uninstall", &h, cfg_change, file_change);
        return EXIT_OK;
}

static const char *block_state(const SshHome *h, const char *include, const char **ret_why) {
        _cleanup_(ssh_block_done) SshBlock b = {};
        int r = h->cfg_exists ? ssh_block_find(h->cfg_data, h->cfg_len, &b, ret_why) : 0;
        if (r < 0)
                return "edited";
        if (r == 0)
                return "absent";
        return streq(b.include, include) ? "installed" : "outdated";
}

static int ssh_config_show(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "ssh-config show", show_help, argc, argv, 0, 0);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        error_clear();
        _cleanup_free_ char *text = NULL, *own = NULL, *include = NULL;
        _cleanup_free_ char *key = path_join(cli->paths.state_dir, "ssh/id_ed25519");
        size_t own_len = 0;
        _cleanup_(ssh_home_done) SshHome h = { .home_fd = -EBADF, .ssh_fd = -EBADF, .cfg_dir_fd = -EBADF };
        if ((r = render_file(cli, &text)) < 0 || (r = ssh_home_open(false, &h)) < 0)
                return fail("show", r);
        if (!key || !(include = path_join(h.ssh_dir, SSH_BANGER_FILE)))
                return fail("show", -ENOMEM);
        const char *why = NULL, *block = block_state(&h, include, &why);
        r = ssh_home_read_own_file(&h, file_header, &own, &own_len);
        const char *file = r < 0 ? "foreign" : r == 0 ? "absent" : streq(own, text) ? "current" : "outdated";
        bool key_exists = access(key, F_OK) == 0;
        if (cli->json) {
                json_t *j = json_pack("{s:s, s:s?, s:s, s:s?, s:s, s:s, s:s, s:b, s:s}", "config", h.cfg_path,
                                      "config_target", h.cfg_target, "block", block, "block_problem", why, "file",
                                      include, "file_state", file, "key", key, "key_exists", key_exists, "text", text);
                cli_print_json(j);
                json_decref(j);
                return EXIT_OK;
        }
        printf("config:  %s%s%s: banger block %s%s%s%s\n", h.cfg_path, h.cfg_target ? " -> " : "", h.cfg_target ?: "",
               block, why ? " (" : "", why ?: "", why ? ")" : "");
        printf("file:    %s: %s\n", include, file);
        printf("key:     %s%s\n", key, key_exists ? "" : " (missing: the daemon creates it when it first starts)");
        printf("\nThe block at the top of ~/.ssh/config:\n  Include \"%s\"\n\n%s:\n%s", include, include, text);
        return EXIT_OK;
}

const CliVerb cli_ssh_config_verbs[] = {
        { "install", NULL, ssh_config_install, "include banger's 'Host *.vm' settings in ~/.ssh/config",
          "--json --help", "" },
        { "uninstall", NULL, ssh_config_uninstall, "remove them again, leaving the file as it was", "--json --help",
          "" },
        { "show", NULL, ssh_config_show, "show what is installed and the text install writes", "--json --help", "" },
        {},
};

int cmd_ssh_config(Cli *cli, int argc, char **argv) {
        return cli_group_run(cli, "ssh-config",
                             "Plain ssh, scp, sftp and rsync to VMs as NAME.vm, through ~/.ssh/config.",
                             cli_ssh_config_verbs, argc, argv);
}
