/* SPDX-License-Identifier: MIT */
#include "check-rows.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *const status_names[] = {
        [CHECK_PASS] = "PASS",
        [CHECK_WARN] = "WARN",
        [CHECK_FAIL] = "FAIL",
};

void check_rows_init(CheckRows *c) {
        *c = (CheckRows){ .rows = json_array() };
}

void check_rows_done(CheckRows *c) {
        json_decref(c->rows);
        c->rows = NULL;
}

void check_row(CheckRows *c, CheckStatus s, const char *check, const char *fmt, ...) {
        char detail[2048] = "";
        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(detail, sizeof(detail), fmt, ap);
                va_end(ap);
        }
        json_t *details = json_array();
        char *save = NULL;
        for (char *l = strtok_r(detail, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
                json_array_append_new(details, json_string(l));
        json_array_append_new(
                c->rows, json_pack("{s:s, s:s, s:o}", "status", status_names[s], "check", check, "details", details));
        c->n_fail += s == CHECK_FAIL;
        c->n_warn += s == CHECK_WARN;
}

void check_rows_print(const CheckRows *c, bool json, const char *note) {
        if (json) {
                cli_print_json(c->rows);
                return;
        }
        size_t i;
        json_t *r;
        json_array_foreach (c->rows, i, r) {
                printf("%s %s\n", json_string_value(json_object_get(r, "status")),
                       json_string_value(json_object_get(r, "check")));
                size_t k;
                json_t *l;
                json_array_foreach (json_object_get(r, "details"), k, l)
                        printf("    %s\n", json_string_value(l));
        }
        printf("\n%u failed, %u warnings%s\n", c->n_fail, c->n_warn, note ?: "");
}
