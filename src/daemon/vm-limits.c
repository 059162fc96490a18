/* SPDX-License-Identifier: MIT */
/* A VM's size against the host it runs on: no more vCPUs than the host has
 * online, no more memory than it has RAM. Checked where a size is given
 * (vm.create and vm.set refuse it as a bad param naming the host's limit)
 * and again before each start, for a VM sized before the host changed. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "error.h"
#include "vm-internal.h"

void vm_host_limits(VmHostLimits *ret) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        *ret = (VmHostLimits){
                .vcpu = cores > 0 ? (unsigned) cores : 1,
                .memory_mib = pages > 0 && psize > 0 ? (unsigned long long) pages * (unsigned long long) psize >> 20
                                                     : 1ULL << 20,
        };
}

char *vm_format_mib(char buf[static VM_MIB_STRLEN], unsigned long long mib) {
        if (mib >= 1024)
                snprintf(buf, VM_MIB_STRLEN, "%.1f GiB", (double) mib / 1024.0);
        else
                snprintf(buf, VM_MIB_STRLEN, "%llu MiB", mib);
        return buf;
}

int vm_size_fits_host(const VmRecord *vm) {
        VmHostLimits h;
        char want[VM_MIB_STRLEN], have[VM_MIB_STRLEN];
        vm_host_limits(&h);
        if (vm->vcpus > h.vcpu)
                return error_setf(-E2BIG,
                                  "vm %s has %u vCPUs, more than this host's %u: change it with 'banger vm set %s "
                                  "--vcpu N'",
                                  vm->name, vm->vcpus, h.vcpu, vm->name);
        if (vm->mem_mib > h.memory_mib)
                return error_setf(-E2BIG,
                                  "vm %s has %s of memory, more than this host's %s: change it with 'banger vm set "
                                  "%s --memory SIZE'",
                                  vm->name, vm_format_mib(want, vm->mem_mib), vm_format_mib(have, h.memory_mib),
                                  vm->name);
        return 0;
}
