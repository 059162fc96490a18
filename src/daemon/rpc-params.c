/* SPDX-License-Identifier: MIT */
/* The one reader of RPC params: a method's field table (rpc-method.h) says
 * which keys it takes and what each must be; everything else is refused
 * with a -32602 error naming the param and what it must be. A table rather
 * than json_unpack() so that each error can say the expected range in
 * words, not jansson's "Expected integer, got string". */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "jsonrpc.h"
#include "rpc-method.h"
#include "string-util.h"

#define PARAM_STRING_MAX 4096
#define PARAM_ELEMENT_MAX 64

const RpcParam rpc_name_params[] = {
        { "name", RPC_PARAM_NAME, RPC_ARG(RpcNameArgs, name), true },
        {},
};

static const char *expected(const RpcParam *p, char *buf, size_t len) {
        if (p->what)
                return p->what;
        switch (p->type) {
        case RPC_PARAM_STRING:
                return "a non-empty string of at most 4096 bytes";
        case RPC_PARAM_NAME:
                return "a name of " NAME_RULE;
        case RPC_PARAM_PATH:
                return "an absolute path";
        case RPC_PARAM_UINT:
                snprintf(buf, len, "an integer from %llu to %llu", p->min, p->max);
                return buf;
        case RPC_PARAM_BOOL:
                return "true or false";
        case RPC_PARAM_STRINGS:
                return "a non-empty string of at most 64 bytes";
        case RPC_PARAM_CUSTOM:
                break;
        }
        return "something else";
}

static int refuse(RpcCall *call, const RpcParam *p, json_t *v) {
        char buf[96], array[256];
        const char *what = expected(p, buf, sizeof(buf));
        if (p->type == RPC_PARAM_STRINGS) {
                snprintf(array, sizeof(array), "an array of 1 to %llu elements, each %s", p->max, what);
                what = array;
        }
        if (!v)
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "missing parameter \"%s\": it must be %s", p->key,
                                     what);
        else
                rpc_call_reply_invalid_param(call, p->key, what,
                                             json_is_string(v) &&
                                                             (p->type == RPC_PARAM_NAME || p->type == RPC_PARAM_PATH ||
                                                              p->type == RPC_PARAM_CUSTOM)
                                                     ? json_string_value(v)
                                                     : NULL);
        return -EINVAL;
}

static bool string_ok(json_t *v, size_t max) {
        return json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= max &&
               strlen(json_string_value(v)) == json_string_length(v); /* no NUL inside */
}

/* 0, or -EINVAL when v is not what p says. */
static int read_value(const RpcParam *p, json_t *v, void *field) {
        switch (p->type) {
        case RPC_PARAM_STRING:
        case RPC_PARAM_NAME:
        case RPC_PARAM_PATH:
                if (!string_ok(v, PARAM_STRING_MAX) ||
                    (p->type == RPC_PARAM_NAME && !name_is_valid(json_string_value(v))) ||
                    (p->type == RPC_PARAM_PATH && json_string_value(v)[0] != '/'))
                        return -EINVAL;
                *(const char **) field = json_string_value(v);
                return 0;
        case RPC_PARAM_UINT:
                if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                    (unsigned long long) json_integer_value(v) < p->min ||
                    (unsigned long long) json_integer_value(v) > p->max)
                        return -EINVAL;
                *(unsigned long long *) field = (unsigned long long) json_integer_value(v);
                return 0;
        case RPC_PARAM_BOOL:
                if (!json_is_boolean(v))
                        return -EINVAL;
                *(bool *) field = json_is_true(v);
                return 0;
        case RPC_PARAM_STRINGS:
                if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > p->max)
                        return -EINVAL;
                *(json_t **) field = v;
                return 0;
        case RPC_PARAM_CUSTOM:
                return p->parse(v, field) < 0 ? -EINVAL : 0;
        }
        return -EINVAL;
}

static int refuse_unknown(RpcCall *call, const char *method, const RpcParam *table, const char *key) {
        char takes[512] = "";
        size_t n = 0;
        for (const RpcParam *p = table; p && p->key && n < sizeof(takes); p++)
                n += (size_t) snprintf(takes + n, sizeof(takes) - n, "%s%s", n ? ", " : "", p->key);
        rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "unknown parameter \"%s\" (%s takes %s)", key, method,
                             n ? takes : "none");
        return -EINVAL;
}

int rpc_params_read(RpcCall *call, const char *method, const RpcParam *table, json_t *params, void *args) {
        const char *key;
        json_t *v;
        json_object_foreach (params, key, v) {
                const RpcParam *p = table;
                while (p && p->key && !streq(p->key, key))
                        p++;
                if (!p || !p->key)
                        return refuse_unknown(call, method, table, key);
        }
        for (const RpcParam *p = table; p && p->key; p++) {
                v = json_object_get(params, p->key);
                if (!v && !p->required)
                        continue;
                if (!v || read_value(p, v, (char *) args + p->offset) < 0)
                        return refuse(call, p, v);
                if (p->type != RPC_PARAM_STRINGS)
                        continue;
                size_t i;
                json_t *e;
                json_array_foreach (v, i, e)
                        if (!string_ok(e, PARAM_ELEMENT_MAX)) {
                                char buf[96];
                                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"%s\"[%zu] must be %s", p->key, i,
                                                     expected(p, buf, sizeof(buf)));
                                return -EINVAL;
                        }
        }
        return 0;
}
