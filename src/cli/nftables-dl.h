/* SPDX-License-Identifier: MIT */
#pragma once

/* libnftables for banger doctor's nftables check (the root helper applies
 * the rules), loaded by that check (dlopen-lib.h): with libnftnl, libxtables
 * and libgmp behind it, linking it cost every banger process about 1.2 ms. */

#include <nftables/libnftables.h>

#include "dlopen-lib.h"

#define NFTABLES_DL_SYMBOLS(X)      \
        X(nft_ctx_new)              \
        X(nft_ctx_free)             \
        X(nft_ctx_buffer_output)    \
        X(nft_ctx_buffer_error)     \
        X(nft_ctx_get_error_buffer) \
        X(nft_run_cmd_from_buffer)

NFTABLES_DL_SYMBOLS(DLSYM_DECLARE)

/* 0, or -ENOPKG with the cause recorded (error_setf). */
int nftables_dl_open(void);
