/* SPDX-License-Identifier: MIT */
#include "nftables-dl.h"

#include "macro.h"

NFTABLES_DL_SYMBOLS(DLSYM_DEFINE)

int nftables_dl_open(void) {
        static void *handle;
        static const DlSymbol syms[] = { NFTABLES_DL_SYMBOLS(DLSYM_ENTRY) };
        /* Debian 12's libnftables1. */
        return dlopen_lib(&handle, "libnftables.so.1", syms, ELEMENTSOF(syms));
}
