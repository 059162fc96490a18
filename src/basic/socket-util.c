/* SPDX-License-Identifier: MIT */
#include "socket-util.h"

#include <errno.h>
#include <string.h>

#include "error.h"
#include "macro.h"

int unix_socket_path_check(const char *path) {
        struct sockaddr_un sa;
        if (!path || !*path)
                return -EINVAL;
        size_t l = strlen(path);
        if (l >= sizeof(sa.sun_path))
                return error_setf(-ENAMETOOLONG,
                                  "socket path %s is %zu bytes, longer than the %zu a Unix socket allows; "
                                  "use a shorter runtime directory",
                                  path, l, sizeof(sa.sun_path) - 1);
        return 0;
}

int sockaddr_un_set(struct sockaddr_un *sa, const char *path, socklen_t *ret_len) {
        int r = unix_socket_path_check(path);
        if (r < 0)
                return r;
        *sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
        memcpy(sa->sun_path, path, strlen(path) + 1);
        if (ret_len)
                *ret_len = (socklen_t) sizeof(*sa);
        return 0;
}

int unix_connect(const char *path, int sock_flags) {
        struct sockaddr_un sa;
        socklen_t len;
        int r = sockaddr_un_set(&sa, path, &len);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (sock_flags & SOCK_NONBLOCK), 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, len) < 0)
                return -errno;
        return TAKE_FD(fd);
}
