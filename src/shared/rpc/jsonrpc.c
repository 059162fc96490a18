/* SPDX-License-Identifier: MIT */
#include "jsonrpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "string-util.h"

void jsonrpc_reader_init(JsonRpcReader *r, size_t max_line) {
        *r = (JsonRpcReader){ .max = max_line };
}

void jsonrpc_reader_done(JsonRpcReader *r) {
        free(r->buf);
        *r = (JsonRpcReader){};
}

static void reader_compact(JsonRpcReader *r) {
        if (r->consumed == 0)
                return;
        memmove(r->buf, r->buf + r->consumed, r->len - r->consumed);
        r->len -= r->consumed;
        r->scanned = r->scanned > r->consumed ? r->scanned - r->consumed : 0;
        r->consumed = 0;
}

/* The next newline after consumed, searching only the bytes not searched
 * before: a long line read in many pieces costs one pass, not one a piece. */
static char *reader_find_newline(JsonRpcReader *r) {
        size_t from = MAX(r->scanned, r->consumed);
        char *nl = from < r->len ? memchr(r->buf + from, '\n', r->len - from) : NULL;
        if (!nl)
                r->scanned = r->len;
        return nl;
}

int jsonrpc_reader_feed(JsonRpcReader *r, const void *data, size_t n) {
        reader_compact(r);
        /* Allow one full line plus its newline, plus what may follow in this read. */
        if (r->len + n + 1 > r->cap) {
                size_t want = MAX(r->cap * 2, r->len + n + 1);
                if (want < 4096)
                        want = 4096;
                char *nb = realloc(r->buf, want);
                if (!nb)
                        return -ENOMEM;
                r->buf = nb;
                r->cap = want;
        }
        memcpy(r->buf + r->len, data, n);
        r->len += n;
        /* A pending partial line already longer than the limit can never become valid. */
        const char *nl = reader_find_newline(r);
        if (!nl && r->len > r->max)
                return -EMSGSIZE;
        return 0;
}

int jsonrpc_reader_next(JsonRpcReader *r, const char **ret_line, size_t *ret_len) {
        char *start = r->buf + r->consumed;
        size_t avail = r->len - r->consumed;
        if (avail == 0)
                return 0;
        char *nl = reader_find_newline(r);
        if (!nl)
                return avail > r->max ? -EMSGSIZE : 0;
        size_t l = (size_t) (nl - start);
        if (l > r->max)
                return -EMSGSIZE;
        *nl = '\0';
        if (l > 0 && start[l - 1] == '\r')
                start[--l] = '\0';
        r->consumed = (size_t) (nl - r->buf) + 1;
        *ret_line = start;
        *ret_len = l;
        return 1;
}

size_t json_text_depth(const char *s, size_t len) {
        size_t depth = 0, max = 0;
        bool in_str = false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (in_str) {
                        if (c == '\\')
                                i++;
                        else if (c == '"')
                                in_str = false;
                        continue;
                }
                if (c == '"')
                        in_str = true;
                else if (c == '[' || c == '{') {
                        if (++depth > max)
                                max = depth;
                } else if ((c == ']' || c == '}') && depth > 0)
                        depth--;
        }
        return max;
}

int jsonrpc_parse_line(const char *line, size_t len, json_t **ret, const char **ret_message) {
        if (len > JSONRPC_MAX_MESSAGE) {
                *ret_message = "message too large";
                return JSONRPC_INVALID_REQUEST;
        }
        if (memchr(line, '\0', len) || !utf8_is_valid_n(line, len)) {
                *ret_message = "message is not valid UTF-8";
                return JSONRPC_PARSE_ERROR;
        }
        if (json_text_depth(line, len) > JSONRPC_MAX_DEPTH) {
                *ret_message = "message nests deeper than 64 levels";
                return JSONRPC_INVALID_REQUEST;
        }
        json_error_t err;
        json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
        if (!j) {
                *ret_message = "parse error: message is not valid JSON";
                return JSONRPC_PARSE_ERROR;
        }
        if (!json_is_object(j)) {
                json_decref(j);
                *ret_message = "message is not a JSON object";
                return JSONRPC_INVALID_REQUEST;
        }
        *ret = j;
        return 0;
}

int jsonrpc_request_from_json(json_t *msg, JsonRpcRequest *ret, const char **ret_message) {
        json_t *v = json_object_get(msg, "jsonrpc");
        if (!json_is_string(v) || !streq(json_string_value(v), "2.0")) {
                *ret_message = "\"jsonrpc\" must be \"2.0\"";
                return JSONRPC_INVALID_REQUEST;
        }
        json_t *m = json_object_get(msg, "method");
        if (!json_is_string(m) || json_string_length(m) == 0 || json_string_length(m) > 128) {
                *ret_message = "\"method\" must be a non-empty string";
                return JSONRPC_INVALID_REQUEST;
        }
        json_t *id = json_object_get(msg, "id");
        if (id && !json_is_string(id) && !json_is_integer(id) && !json_is_null(id)) {
                *ret_message = "\"id\" must be a string, an integer or null";
                return JSONRPC_INVALID_REQUEST;
        }
        if (id && json_is_string(id) && json_string_length(id) > 256) {
                *ret_message = "\"id\" is too long";
                return JSONRPC_INVALID_REQUEST;
        }
        json_t *params = json_object_get(msg, "params");
        if (params && !json_is_object(params)) {
                *ret_message = "\"params\" must be an object";
                return JSONRPC_INVALID_REQUEST;
        }
        json_t *build = json_object_get(msg, "build");
        if (build && (!json_is_string(build) || json_string_length(build) == 0 ||
                      json_string_length(build) > JSONRPC_BUILD_MAX)) {
                *ret_message = "\"build\" must be a non-empty string";
                return JSONRPC_INVALID_REQUEST;
        }
        const char *key;
        json_t *val;
        json_object_foreach (msg, key, val) {
                if (!streq(key, "jsonrpc") && !streq(key, "method") && !streq(key, "id") && !streq(key, "params") &&
                    !streq(key, "build")) {
                        *ret_message = "unknown member in request";
                        return JSONRPC_INVALID_REQUEST;
                }
        }
        *ret = (JsonRpcRequest){
                .method = json_string_value(m), .params = params, .id = id, .build = json_string_value(build)
        };
        return 0;
}

static char *dump_line(json_t *j) {
        if (!j)
                return NULL;
        char *s = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!s)
                return NULL;
        size_t l = strlen(s);
        char *line = realloc(s, l + 2);
        if (!line) {
                free(s);
                return NULL;
        }
        line[l] = '\n';
        line[l + 1] = '\0';
        return line;
}

char *jsonrpc_format_result(json_t *id, json_t *result) {
        json_t *j = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "result",
                              result ? result : json_object());
        return dump_line(j);
}

char *jsonrpc_format_result_text(json_t *id, const char *result, size_t len) {
        static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":", mid[] = ",\"result\":", tail[] = "}\n";
        if (memchr(result, '\n', len))
                return NULL;
        _cleanup_free_ char *jid = json_dumps(id ? id : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
        if (!jid)
                return NULL;
        size_t l_id = strlen(jid);
        char *line = malloc(sizeof(head) - 1 + l_id + sizeof(mid) - 1 + len + sizeof(tail));
        if (!line)
                return NULL;
        char *p = mempcpy(line, head, sizeof(head) - 1);
        p = mempcpy(p, jid, l_id);
        p = mempcpy(p, mid, sizeof(mid) - 1);
        p = mempcpy(p, result, len);
        memcpy(p, tail, sizeof(tail));
        return line;
}

char *jsonrpc_error_message_clean(const char *message) {
        const char *m = message ? message : "error";
        size_t len = strlen(m), cut = utf8_truncate_len(m, len, JSONRPC_ERROR_MESSAGE_MAX);
        char *s = malloc(cut + sizeof("..."));
        if (!s)
                return NULL;
        memcpy(s, m, cut);
        strcpy(s + cut, cut < len ? "..." : "");
        return string_make_printable(s, false);
}

char *jsonrpc_format_error(json_t *id, int code, const char *message, json_t *data) {
        _cleanup_free_ char *clean = jsonrpc_error_message_clean(message);
        json_t *err = json_pack("{s:i, s:s}", "code", code, "message", clean ? clean : "error");
        if (!err) /* a message jansson refuses (not UTF-8): say so rather than go silent */
                err = json_pack("{s:i, s:s}", "code", code, "message", "error (its description could not be encoded)");
        if (err && data)
                json_object_set_new(err, "data", data);
        else if (data)
                json_decref(data);
        if (!err)
                return NULL;
        json_t *j = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", err);
        return dump_line(j);
}

char *jsonrpc_format_notification(const char *method, json_t *params) {
        json_t *j = json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params",
                              params ? params : json_object());
        return dump_line(j);
}

char *jsonrpc_format_request(json_t *id, const char *method, json_t *params, const char *build) {
        json_t *j = json_pack("{s:s, s:O, s:s, s:o, s:s*}", "jsonrpc", "2.0", "id", id, "method", method, "params",
                              params ? params : json_object(), "build", build);
        return dump_line(j);
}
