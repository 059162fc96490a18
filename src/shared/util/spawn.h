/* SPDX-License-Identifier: MIT */
#pragma once

/* The one place banger starts programs: argv only (never a shell), a cleared
 * environment unless one is given, stdio wired to given fds or /dev/null,
 * every other fd closed, an explicit umask, and an optional new session so
 * the child outlives the daemon. Children are tracked as {pid, pidfd}. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "macro.h"
#include "time-util.h"

typedef struct Process {
        pid_t pid;
        int pidfd;
} Process;

#define PROCESS_NULL ((Process){ .pid = 0, .pidfd = -EBADF })

typedef struct SpawnOptions {
        int stdin_fd;  /* < 0: /dev/null */
        int stdout_fd; /* < 0: /dev/null */
        int stderr_fd; /* < 0: /dev/null */
        mode_t umask;  /* applied in the child before exec */
        bool new_session;
        char *const *env; /* NULL: a minimal PATH-only environment */
        const char *cwd;  /* NULL: "/" */
        bool set_ids;
        uid_t uid;
        gid_t gid;
        /* The child records its own pid, as its first step after fork (so a
         * caller killed at any moment after the fork leaves it behind): "<pid>\n"
         * written to a temporary name beneath pidfile_dir_fd, mode 0600, then
         * renamed onto pidfile_name. pidfile_name NULL: no pidfile. A child
         * that cannot write it exits and spawn_process() fails. */
        int pidfile_dir_fd;
        const char *pidfile_name;
        /* >= 0: handed to the program as fd SPAWN_KEEP_FD (without CLOEXEC), so
         * the open file description, and an OFD lock on it, lives exactly as
         * long as the program (and whatever it leaves the fd to). */
        int keep_fd;
} SpawnOptions;

#define SPAWN_KEEP_FD 3

/* Fill defaults: stdio to /dev/null, umask 077, no new session, no pidfile,
 * no kept fd. */
void spawn_options_init(SpawnOptions *o);

/* Start argv[0] (absolute path, or looked up in PATH of the *daemon*).
 * On success *ret holds the pid and a pidfd (O_CLOEXEC). */
int spawn_process(char *const argv[], const SpawnOptions *o, Process *ret);

/* Wait for exit up to timeout (USEC_INFINITY: forever). Returns 0 and the
 * wait status, or -ETIMEDOUT (process still running). Reaps the child when
 * it is ours; for a foreign pid (re-attached after a daemon restart) it
 * only observes the exit and sets *ret_status to 0. */
int process_wait(Process *p, usec_t timeout, int *ret_status);

/* Send a signal through the pidfd (never a stale pid number). */
int process_signal(Process *p, int sig);

/* Close the pidfd; does not kill. */
void process_release(Process *p);

/* Kill with SIGKILL and reap; for cleanup of helpers leaving scope. */
void process_kill_and_reap(Process *p);

/* The same for a child started with new_session, and every process of its
 * process group (the programs it ran): SIGKILL to the group, then the reap.
 * The leader is not reaped before, so its pid still names the group. */
void process_group_kill_and_reap(Process *p);

/* Run a program to completion with a deadline, capturing up to max_out
 * bytes of stdout (and stderr merged when merge_stderr). Returns the exit
 * code (>= 0), -ETIMEDOUT (child killed), or -errno. A child killed by a
 * signal gives -ECHILD. */
int spawn_run_capture(char *const argv[], usec_t timeout, size_t max_out, bool merge_stderr, char **ret_out);

/* The first of the candidate paths, relative to the directory of the
 * running program (/proc/self/exe), that is executable: how banger's
 * programs find each other both installed and in the build tree. */
char *find_program_beside_self(const char *const *relative, size_t n);

/* Locate a program in PATH (or use it as is when it contains '/');
 * returns a newly allocated absolute path or NULL. */
char *find_executable(const char *name);
