/* SPDX-License-Identifier: MIT */
/* Which database files this process has connections to.
 *
 * SQLite locks a database with POSIX advisory locks, and those belong to the
 * process: closing any descriptor of the file in this process releases every
 * lock SQLite holds on it, for all of its connections
 * (https://sqlite.org/howtocorrupt.html, "Posix advisory locks canceled by a
 * separate thread doing close()"). Another process then takes this one for
 * gone: the last connection it closes checkpoints and deletes the -wal and
 * -shm files under our connections, whose next writes are lost ("disk I/O
 * error"). The store opens a database file itself, to check it before
 * SQLite touches it, so it does that only while no connection of this
 * process has the file open: a count per file, raised under one mutex from
 * before such a check until the connection is closed. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "store-internal.h"

#define STORE_FILES_MAX 32

typedef struct HeldFile {
        dev_t dev;
        ino_t ino;
        unsigned n; /* 0: a free slot */
} HeldFile;

static pthread_mutex_t files_lock = PTHREAD_MUTEX_INITIALIZER;
static HeldFile files[STORE_FILES_MAX];

static HeldFile *find_file(dev_t dev, ino_t ino) {
        for (size_t i = 0; i < STORE_FILES_MAX; i++)
                if (files[i].n > 0 && files[i].dev == dev && files[i].ino == ino)
                        return &files[i];
        return NULL;
}

static HeldFile *free_slot(void) {
        for (size_t i = 0; i < STORE_FILES_MAX; i++)
                if (files[i].n == 0)
                        return &files[i];
        return NULL;
}

/* Under files_lock. The file as it is now: held already (no descriptor of
 * ours is opened or closed), or checked through a descriptor that is closed
 * again before anything else of this process can open the file. */
static int hold_locked(const char *path, StoreFileCheck check, void *userdata, StoreFile *ret) {
        struct stat st;
        if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                HeldFile *f = find_file(st.st_dev, st.st_ino);
                if (f) {
                        f->n++;
                        *ret = (StoreFile){ .dev = st.st_dev, .ino = st.st_ino, .held = true };
                        return 0;
                }
        } else if (errno != ENOENT)
                return error_setf(-errno, "stat %s: %m", path);
        HeldFile *slot = free_slot();
        if (!slot)
                return error_setf(-ENFILE, "too many database files open in this process");
        int r = check(path, &st, userdata);
        if (r < 0)
                return r;
        *slot = (HeldFile){ .dev = st.st_dev, .ino = st.st_ino, .n = 1 };
        *ret = (StoreFile){ .dev = st.st_dev, .ino = st.st_ino, .held = true, .checked = true };
        return 0;
}

int store_file_hold(const char *path, StoreFileCheck check, void *userdata, StoreFile *ret) {
        pthread_mutex_lock(&files_lock);
        int r = hold_locked(path, check, userdata, ret);
        pthread_mutex_unlock(&files_lock);
        return r;
}

void store_file_release(StoreFile *f) {
        if (!f || !f->held)
                return;
        pthread_mutex_lock(&files_lock);
        HeldFile *h = find_file(f->dev, f->ino);
        if (h)
                h->n--;
        pthread_mutex_unlock(&files_lock);
        f->held = false;
}
