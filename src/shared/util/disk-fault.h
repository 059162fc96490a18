/* SPDX-License-Identifier: MIT */
#pragma once

/* Fault injection for tests. Every host setup step (clone, patch, loop,
 * dm, work disk) calls disk_fault_point() before it acts; when a test has
 * installed disk_fault_hook and the hook returns < 0, the step fails with
 * that error as if the operation had, so the rollback paths can be driven
 * step by step. Production never sets the hook, so a step costs one NULL
 * check. */

extern int (*disk_fault_hook)(const char *step);

/* 0, or the hook's error with "injected fault at step 'step'" recorded. */
int disk_fault_point(const char *step);
