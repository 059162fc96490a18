/* SPDX-License-Identifier: MIT */
/* The agent's tar reader (src/agent/agent-tar.c), as files-put runs it on a
 * stream from the host: headers, pax and GNU extended headers, data and
 * padding, end of archive. Every entry it returns has a bounded name, and
 * the path rules (agent-paths.h) hold for it. An entry re-encoded with the
 * agent's writer reads back the same. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent-paths.h"
#include "agent-tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Mem {
        const uint8_t *p;
        size_t left;
} Mem;

static long mem_read(void *userdata, uint8_t *buf, size_t len) {
        Mem *m = userdata;
        size_t n = len < m->left ? len : m->left;
        memcpy(buf, m->p, n);
        m->p += n;
        m->left -= n;
        return (long) n;
}

static void check_roundtrip(const TarEntry *e) {
        uint8_t *h = NULL;
        size_t len = 0;
        TarEntry copy = *e;
        copy.size = 0;
        if (tar_header_encode(&copy, &h, &len) < 0)
                return;
        uint8_t *buf = calloc(1, len + 2 * TAR_BLOCK);
        assert(buf);
        memcpy(buf, h, len);
        Mem m = { buf, len + 2 * TAR_BLOCK };
        TarReader r = { .read = mem_read, .userdata = &m };
        TarEntry back = {};
        const char *why = NULL;
        assert(tar_read_header(&r, &back, &why) == 1);
        assert(strcmp(back.path, e->path) == 0);
        assert(back.type == e->type && back.mode == e->mode && back.uid == e->uid && back.gid == e->gid);
        assert(back.mtime_sec == e->mtime_sec && back.mtime_nsec == e->mtime_nsec);
        assert(!e->linkpath || (back.linkpath && strcmp(back.linkpath, e->linkpath) == 0));
        tar_entry_done(&back);
        free(buf);
        free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Mem m = { data, size };
        TarReader r = { .read = mem_read, .userdata = &m };
        for (unsigned i = 0; i < 64; i++) {
                TarEntry e = {};
                const char *why = NULL;
                int q = tar_read_header(&r, &e, &why);
                if (q <= 0) {
                        assert(q == 0 || q != -EBADMSG || why);
                        break;
                }
                assert(e.path && strlen(e.path) <= TAR_PATH_MAX);
                char *n = NULL;
                if (agent_archive_path_normalize(e.path, &n) == 0) {
                        assert(n[0] != '/' && strcmp(n, "..") != 0 && strncmp(n, "../", 3) != 0 && !strstr(n, "/../"));
                        if (e.linkpath)
                                (void) agent_symlink_escapes(n, e.linkpath, true);
                        free(n);
                }
                if (e.mtime_sec >= 0 && e.type != TAR_LINK)
                        check_roundtrip(&e);
                uint8_t buf[4096];
                while (tar_read_data(&r, buf, sizeof(buf)) > 0)
                        ;
                tar_entry_done(&e);
        }
        return 0;
}
