/* SPDX-License-Identifier: MIT */
#pragma once

/* A library only some commands need, loaded by the command that needs it
 * rather than by every banger process: a `vm list` should not pay for
 * libarchive (and libxml2, ICU, libstdc++ behind it) or libnftables. The
 * library is still Debian's; we call it through pointers named sym_<name>
 * whose types come from its own header, so a prototype cannot drift.
 *
 *     #define FOO_SYMBOLS(X) X(foo_new) X(foo_free)
 *     FOO_SYMBOLS(DLSYM_DECLARE)              (in a header: the pointers)
 *     FOO_SYMBOLS(DLSYM_DEFINE)               (in one .c file)
 *     static const DlSymbol syms[] = { FOO_SYMBOLS(DLSYM_ENTRY) };
 *     dlopen_lib(&handle, "libfoo.so.1", syms, ELEMENTSOF(syms));
 */

#include <stddef.h>

#define DLSYM_DECLARE(s) extern __typeof__(s) *sym_##s;
#define DLSYM_DEFINE(s) __typeof__(s) *sym_##s = NULL;
#define DLSYM_ENTRY(s) { #s, (void **) &sym_##s },

typedef struct DlSymbol {
        const char *name;
        void **fn;
} DlSymbol;

/* Load soname once (*handle keeps it for the process's life) and resolve
 * every symbol. 0, or -ENOPKG with the cause recorded (error_setf), in which
 * case no sym_ pointer was set. Not thread-safe: call before starting
 * threads that use the library. */
int dlopen_lib(void **handle, const char *soname, const DlSymbol *syms, size_t n);
