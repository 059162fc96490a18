/* SPDX-License-Identifier: MIT */
#include "agent-paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int agent_archive_path_normalize(const char *name, char **ret) {
        if (name[0] == '/')
                return -EINVAL;
        size_t len = strlen(name);
        char *out = malloc(len + 2), *o = out;
        if (!out)
                return -ENOMEM;
        for (const char *p = name; *p;) {
                size_t n = strcspn(p, "/");
                if (n == 2 && p[0] == '.' && p[1] == '.') {
                        free(out);
                        return -EINVAL;
                }
                if (n > 0 && !(n == 1 && p[0] == '.')) {
                        if (o != out)
                                *o++ = '/';
                        memcpy(o, p, n);
                        o += n;
                }
                p += n;
                p += strspn(p, "/");
        }
        if (o == out)
                *o++ = '.';
        *o = 0;
        *ret = out;
        return 0;
}

unsigned agent_archive_top_len(const char *path) {
        return (unsigned) strcspn(path, "/");
}

static int components(const char *p) {
        int n = 0;
        for (; *p; p += strspn(p, "/")) {
                size_t k = strcspn(p, "/");
                if (k > 0 && !(k == 1 && p[0] == '.'))
                        n++;
                p += k;
        }
        return n;
}

bool agent_symlink_escapes(const char *path, const char *target, bool root_is_top) {
        if (target[0] == '/' || target[0] == 0)
                return true;
        /* How deep below the tree's root the link's directory is. */
        int depth = components(path) - 1 - (root_is_top ? 1 : 0);
        if (depth < 0)
                return true; /* the top itself is a symlink pointing somewhere relative: outside */
        for (const char *p = target; *p; p += strspn(p, "/")) {
                size_t k = strcspn(p, "/");
                if (k == 2 && p[0] == '.' && p[1] == '.') {
                        if (--depth < 0)
                                return true;
                } else if (k > 0 && !(k == 1 && p[0] == '.'))
                        depth++;
                p += k;
        }
        return false;
}

int agent_archive_path_rename(const char *path, const char *name, char **ret) {
        const char *rest = path + agent_archive_top_len(path);
        char *s = NULL;
        if (asprintf(&s, "%s%s", name ? name : "", name ? rest : path) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}
