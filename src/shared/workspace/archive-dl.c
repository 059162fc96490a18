/* SPDX-License-Identifier: MIT */
#include "archive-dl.h"

#include "macro.h"

/* libarchive 3's soname (Debian 12: libarchive13). */
_Static_assert(ARCHIVE_VERSION_NUMBER >= 3000000 && ARCHIVE_VERSION_NUMBER < 4000000,
               "libarchive 3 is libarchive.so.13");
#define ARCHIVE_SONAME "libarchive.so.13"

ARCHIVE_DL_SYMBOLS(DLSYM_DEFINE)

int archive_dl_open(void) {
        static void *handle;
        static const DlSymbol syms[] = { ARCHIVE_DL_SYMBOLS(DLSYM_ENTRY) };
        return dlopen_lib(&handle, ARCHIVE_SONAME, syms, ELEMENTSOF(syms));
}
