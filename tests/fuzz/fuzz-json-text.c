/* SPDX-License-Identifier: MIT */
/* Fuzz the JSON text handling the CLI uses on a daemon's reply (vm list
 * --json): the result member's span, and the indented writer, checked
 * against jansson: a text jansson parses and would write back the same,
 * compact, must come out as jansson's JSON_INDENT(2) dump, byte for byte. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_against_jansson(const char *s, size_t len) {
        json_t *j = json_loadb(s, len, JSON_DECODE_ANY, NULL);
        char *compact = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (compact && strlen(compact) == len && memcmp(compact, s, len) == 0) {
                char *want = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY), *got = NULL;
                size_t n = 0;
                FILE *f = open_memstream(&got, &n);
                int r = f ? json_text_write_indented(s, len, f) : -1;
                if (f)
                        fclose(f);
                /* Deeper than 64 levels is refused where jansson takes it. */
                if (want && r == 0 && strcmp(got, want) != 0)
                        abort();
                free(got);
                free(want);
        }
        free(compact);
        json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *s = (const char *) data;
        size_t a = 0, b = 0;
        if (json_text_member_span(s, size, "result", &a, &b) == 0 && (a > b || b > size))
                abort();
        (void) json_text_write_indented(s, size, NULL);
        check_against_jansson(s, size);
        return 0;
}
