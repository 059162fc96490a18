/* SPDX-License-Identifier: MIT */
#include "dlopen-lib.h"

#include <dlfcn.h>
#include <errno.h>

#include "error.h"

int dlopen_lib(void **handle, const char *soname, const DlSymbol *syms, size_t n) {
        if (*handle)
                return 0;
        void *dl = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
        if (!dl)
                return error_setf(-ENOPKG, "cannot load %s: %s", soname, dlerror());
        for (size_t i = 0; i < n; i++) {
                *syms[i].fn = dlsym(dl, syms[i].name);
                if (*syms[i].fn)
                        continue;
                int r = error_setf(-ENOPKG, "%s has no %s (not the version banger was built for?)", soname,
                                   syms[i].name);
                for (size_t j = 0; j < i; j++)
                        *syms[j].fn = NULL;
                (void) dlclose(dl);
                return r;
        }
        *handle = dl;
        return 0;
}
