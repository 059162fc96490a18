/* SPDX-License-Identifier: MIT */
/* Replays a fuzz corpus through LLVMFuzzerTestOneInput in ordinary builds
 * (plain and ASan), so every corpus entry runs in the normal test command. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs-util.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
                return 2;
        }
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, argv[1]);
        if (dfd < 0) {
                fprintf(stderr, "cannot open corpus %s: %s\n", argv[1], strerror(-dfd));
                return 1;
        }
        DIR *d = fdopendir(dup(dfd));
        if (!d)
                return 1;
        unsigned n = 0;
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.')
                        continue;
                _cleanup_free_ char *buf = NULL;
                size_t len = 0;
                int r = read_file_at(dfd, de->d_name, 4 << 20, &buf, &len);
                if (r < 0) {
                        fprintf(stderr, "cannot read %s: %s\n", de->d_name, strerror(-r));
                        closedir(d);
                        return 1;
                }
                LLVMFuzzerTestOneInput((const uint8_t *) buf, len);
                n++;
        }
        closedir(d);
        if (n == 0) {
                fprintf(stderr, "corpus %s is empty\n", argv[1]);
                return 1;
        }
        printf("replayed %u inputs from %s\n", n, argv[1]);
        return 0;
}
