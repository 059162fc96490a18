/* SPDX-License-Identifier: MIT */
/* What the host keeps of a VM's workspace (workspace-state.h): the record, and the
 * temporary directories the workspace commands work in. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file-tree.h"
#include "fs-util.h"
#include "macro.h"
#include "string-util.h"
#include "workspace-state.h"

#define RECORD_NAME "record.json"
#define RECORD_MAX (64 * 1024)

void ws_record_done(WsRecord *r) {
        free(r->vm_id);
        free(r->host);
        free(r->guest);
        free(r->base);
        free(r->branch);
        free(r->tree);
        *r = (WsRecord){};
}

int ws_state_dir(const char *state_root, const char *vm_id, bool create, char **ret) {
        _cleanup_free_ char *dir = NULL;
        if (!name_is_valid(vm_id) || asprintf(&dir, "%s/workspaces/%s", state_root, vm_id) < 0)
                return -EINVAL;
        if (create) {
                int r = mkdir_p(dir, 0700);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(dir);
        return 0;
}

static char *dup_str(json_t *o, const char *key) {
        const char *s = json_string_value(json_object_get(o, key));
        return s ? strdup(s) : NULL;
}

int ws_record_load(const char *dir, WsRecord *ret) {
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
        if (dfd < 0)
                return dfd;
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r = read_file_at(dfd, RECORD_NAME, RECORD_MAX, &data, &len);
        if (r < 0)
                return r;
        json_t *o = json_loadb(data, len, 0, NULL);
        if (!json_is_object(o)) {
                json_decref(o);
                return -EBADMSG;
        }
        WsRecord w = { .vm_id = dup_str(o, "vm_id"),
                       .host = dup_str(o, "host"),
                       .guest = dup_str(o, "guest"),
                       .base = dup_str(o, "base"),
                       .branch = dup_str(o, "branch"),
                       .tree = dup_str(o, "tree") };
        json_decref(o);
        if (!w.vm_id || !w.host || !w.guest || !w.base || !w.tree) {
                ws_record_done(&w);
                return -EBADMSG;
        }
        *ret = w;
        return 0;
}

int ws_record_save(const char *dir, const WsRecord *r) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?}", "vm_id", r->vm_id, "host", r->host, "guest", r->guest,
                              "base", r->base, "tree", r->tree, "branch", r->branch);
        char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
        json_decref(o);
        if (!text)
                return -ENOMEM;
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
        int q = dfd < 0 ? dfd : write_file_atomic_at(dfd, RECORD_NAME, text, strlen(text), 0600);
        free(text);
        return q;
}

int ws_temp_dir(char **ret) {
        const char *t = getenv("TMPDIR");
        _cleanup_free_ char *d = NULL;
        if (asprintf(&d, "%s/banger-workspace-XXXXXX", t && t[0] == '/' ? t : "/tmp") < 0)
                return -ENOMEM;
        if (!mkdtemp(d)) /* 0700 from birth */
                return -errno;
        *ret = TAKE_PTR(d);
        return 0;
}

void ws_temp_dir_remove(char **dir) {
        if (*dir)
                (void) rm_rf_at(AT_FDCWD, *dir);
        free(*dir);
        *dir = NULL;
}
