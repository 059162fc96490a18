/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

/* A Unix socket path must fit sun_path (107 bytes + NUL). Returns 0, -EINVAL
 * for a NULL or empty path, or -ENAMETOOLONG with a message (error.h) naming
 * the path and what to do. */
int unix_socket_path_check(const char *path);

/* Fill sa with AF_UNIX and path (checked as above); ret_len, if given, gets
 * the length to pass to bind() or connect(). */
int sockaddr_un_set(struct sockaddr_un *sa, const char *path, socklen_t *ret_len);

/* Connect a new SOCK_STREAM socket (O_CLOEXEC, plus the SOCK_NONBLOCK in
 * sock_flags if given) to the Unix socket at path. Returns the fd or -errno
 * (a Unix socket connects at once or not at all). */
int unix_connect(const char *path, int sock_flags);
