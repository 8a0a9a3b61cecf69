// Tiny C shim for what Swift cannot import from libgit2 and libseccomp:
// variadic functions and function-like macros.
#ifndef PATINA_SHIM_H
#define PATINA_SHIM_H

#include <stdint.h>

// libseccomp: function-like macros and architecture tokens built from
// macro expressions.
uint32_t patina_scmp_act_errno(uint16_t err);
uint32_t patina_scmp_act_allow(void);
uint32_t patina_scmp_act_kill_process(void);
uint32_t patina_scmp_arch_native(void);
uint32_t patina_scmp_arch_x86_64(void);
uint32_t patina_scmp_arch_x86(void);
uint32_t patina_scmp_arch_x32(void);
uint32_t patina_scmp_arch_aarch64(void);
uint32_t patina_scmp_arch_arm(void);

// libseccomp actions beyond allow/errno/kill-process, for Docker profiles that use them.
uint32_t patina_scmp_act_kill_thread(void);
uint32_t patina_scmp_act_trap(void);
uint32_t patina_scmp_act_log(void);

// memfd_create(2): where the seccomp BPF is exported to, without touching disk.
int patina_memfd_create(const char *name);

// epoll: <sys/epoll.h> is not in Swift's Glibc module. Waits up to timeout_ms for
// fd to become readable through a fresh epoll instance: 1 ready, 0 timed out,
// -1 with errno set.
int patina_epoll_wait_readable(int fd, int timeout_ms);

// ioctl(2) is variadic: the rows and columns of the terminal on fd (TIOCGWINSZ);
// 0 on success, -1 with errno set (not a terminal).
int patina_terminal_size(int fd, int *rows, int *columns);

// Runs syscall(number, a0..a5) in a forked child, so a call a seccomp filter
// wrongly lets through (ptrace(PTRACE_TRACEME), unshare) cannot change the
// caller. Returns 0 if the call succeeded, its errno if it failed, 1000 + the
// signal if the child was killed, or -1 with errno set if fork or wait failed.
int patina_syscall_in_child(long number, long a0, long a1, long a2, long a3, long a4, long a5);

// syscall(2) is variadic.
long patina_syscall6(long number, long a0, long a1, long a2, long a3, long a4, long a5);

// git_libgit2_opts is variadic.
int patina_git_set_owner_validation(int enabled);
int patina_git_set_strict_hash_verification(int enabled);
int patina_git_set_search_path_empty(int level);

// git2/sys/repository.h is not part of the CGit2 module.
struct git_repository;
struct git_index;
int patina_git_repository_set_index(struct git_repository *repo, struct git_index *index);

// An idmapped view of the directory `source` at `target` (an empty directory):
// through it, what disk_uid/gid own on disk belongs to view_uid/gid, and what
// view_uid/gid create is owned by disk_uid/gid; nosuid, nodev. Needs root and a
// filesystem that supports idmapped mounts. Returns 0 or an errno, with the step
// that failed in *stage.
enum { PATINA_IDMAP_USERNS = 1, PATINA_IDMAP_MAP, PATINA_IDMAP_CLONE, PATINA_IDMAP_SETATTR, PATINA_IDMAP_MOVE };
int patina_idmapped_mount(const char *source, const char *target,
                          uint32_t disk_uid, uint32_t disk_gid, uint32_t view_uid, uint32_t view_gid,
                          int *stage);

// umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW): 0 or an errno.
int patina_detach_mount(const char *target);

// Mounts an overlay at `target` (nosuid, nodev): `lower` read through, what is written
// going to `upper` (`work` its scratch, on the same filesystem). `options` is the whole
// option string (lowerdir=…,upperdir=…,workdir=…), built by the caller. 0, or an errno.
int patina_overlay_mount(const char *target, const char *options);

#endif
