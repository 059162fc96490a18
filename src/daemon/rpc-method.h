/* SPDX-License-Identifier: MIT */
#pragma once

/* What a method is: its name, the params it accepts (a field table read into
 * the method's own args struct), and the code that answers, either on the
 * loop (run) or in a worker thread (work). The server does the rest for
 * every method alike: unknown params are refused, each param is checked
 * against its type and range with a -32602 error that names it, the args
 * live as long as the call (strings point into the request's params). */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "rpc-call.h"

typedef struct Store Store;

typedef enum RpcParamType {
        RPC_PARAM_STRING,  /* const char *: non-empty, at most 4096 bytes */
        RPC_PARAM_NAME,    /* const char *: name_is_valid() */
        RPC_PARAM_PATH,    /* const char *: an absolute path */
        RPC_PARAM_UINT,    /* unsigned long long from min to max */
        RPC_PARAM_BOOL,    /* bool */
        RPC_PARAM_STRINGS, /* json_t * (borrowed): 1 to max strings of 1 to 64 bytes */
        RPC_PARAM_CUSTOM,  /* parse() decides */
} RpcParamType;

typedef struct RpcParam {
        const char *key; /* NULL ends a table */
        RpcParamType type;
        size_t offset; /* of the field in the args struct */
        bool required;
        unsigned long long min, max; /* RPC_PARAM_UINT; RPC_PARAM_STRINGS: max elements */
        /* The error says "must be <what>"; NULL: the type's own words. For
         * RPC_PARAM_STRINGS it describes one element. */
        const char *what;
        int (*parse)(json_t *v, void *field); /* RPC_PARAM_CUSTOM: < 0 refuses */
} RpcParam;

#define RPC_ARG(type, field) offsetof(type, field)

typedef struct RpcMethod {
        const char *name;
        const RpcParam *params; /* NULL: no params */
        size_t args_size;       /* the args struct, zeroed before defaults() */
        /* Optional, on the loop: defaults for what the client may leave out. */
        void (*defaults)(Daemon *d, void *args);
        /* Optional, on the loop: checks across params; replies and returns
         * < 0 to refuse the call. */
        int (*check)(Daemon *d, RpcCall *call, void *args);
        /* One of: answer on the loop (return < 0: reply with that errno) ... */
        int (*run)(Daemon *d, RpcCall *call, void *args);
        /* ... or in a worker, with a Store of its own: < 0 is an error
         * reply, else *ret is the result. */
        int (*work)(RpcCall *call, Store *s, void *args, json_t **ret);
        const void *data; /* rpc_call_method_data() */
        /* A long operation (with work): listed by operations.list and
         * cancellable while it runs (operation.h), its kind the method's
         * name, its target the value of this param (a string, or an array
         * of strings), when given; "a b": a, else b. */
        bool operation;
        const char *operation_target;
        /* The operation has cancellation points (operation.h), so
         * operations.cancel may stop it; without, a cancel is refused. */
        bool cancellable;
} RpcMethod;

/* The params of the many methods that take only the name of something. */
typedef struct RpcNameArgs {
        const char *name;
} RpcNameArgs;
extern const RpcParam rpc_name_params[];

/* Read params into args as the table says; on failure reply -32602 naming
 * the param and return -EINVAL. */
int rpc_params_read(RpcCall *call, const char *method, const RpcParam *table, json_t *params, void *args);
