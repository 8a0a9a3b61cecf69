#define _GNU_SOURCE
#include "patina_shim.h"

#include <git2.h>
#include <git2/sys/repository.h>
#include <seccomp.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <linux/mount.h>

uint32_t patina_scmp_act_errno(uint16_t err) { return SCMP_ACT_ERRNO(err); }
uint32_t patina_scmp_act_allow(void) { return SCMP_ACT_ALLOW; }
uint32_t patina_scmp_act_kill_process(void) { return SCMP_ACT_KILL_PROCESS; }
uint32_t patina_scmp_arch_native(void) { return SCMP_ARCH_NATIVE; }
uint32_t patina_scmp_arch_x86_64(void) { return SCMP_ARCH_X86_64; }
uint32_t patina_scmp_arch_x86(void) { return SCMP_ARCH_X86; }
uint32_t patina_scmp_arch_x32(void) { return SCMP_ARCH_X32; }
uint32_t patina_scmp_arch_aarch64(void) { return SCMP_ARCH_AARCH64; }
uint32_t patina_scmp_arch_arm(void) { return SCMP_ARCH_ARM; }

uint32_t patina_scmp_act_kill_thread(void) { return SCMP_ACT_KILL_THREAD; }
uint32_t patina_scmp_act_trap(void) { return SCMP_ACT_TRAP; }
uint32_t patina_scmp_act_log(void) { return SCMP_ACT_LOG; }

int patina_memfd_create(const char *name) {
    return (int)syscall(SYS_memfd_create, name, 1u /* MFD_CLOEXEC */);
}

int patina_epoll_wait_readable(int fd, int timeout_ms) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return -1;
    struct epoll_event event = { .events = EPOLLIN, .data.fd = fd };
    int rc = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &event);
    if (rc == 0) {
        struct epoll_event ready;
        rc = epoll_wait(ep, &ready, 1, timeout_ms);
        if (rc == 1 && ready.data.fd != fd) { errno = EBADF; rc = -1; }
    }
    int saved = errno;
    close(ep);
    errno = saved;
    return rc;
}

// In a forked child: closes every descriptor from 3 up except `keep_a` and `keep_b`.
// close_range(2) (Linux 5.9; idmapped mounts need 5.12), async-signal-safe.
static void patina_close_all_but(int keep_a, int keep_b) {
    unsigned int low = (unsigned int)(keep_a < keep_b ? keep_a : keep_b);
    unsigned int high = (unsigned int)(keep_a < keep_b ? keep_b : keep_a);
    unsigned int from = 3;
    if (low >= from) {
        if (low > from) syscall(SYS_close_range, from, low - 1, 0u);
        from = low + 1;
    }
    if (high >= from) {
        if (high > from) syscall(SYS_close_range, from, high - 1, 0u);
        from = high + 1;
    }
    syscall(SYS_close_range, from, ~0u, 0u);
}

int patina_syscall_in_child(long number, long a0, long a1, long a2, long a3, long a4, long a5) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        // Only async-signal-safe calls in the child of a multithreaded process.
        long rc = syscall(number, a0, a1, a2, a3, a4, a5);
        _exit(rc >= 0 ? 0 : (errno & 0xff));
    }
    int status = 0;
    // __WALL: if PTRACE_TRACEME went through, this process is the child's tracer.
    while (waitpid(pid, &status, __WALL) < 0) {
        if (errno != EINTR) return -1;
    }
    if (WIFSIGNALED(status)) return 1000 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

long patina_syscall6(long number, long a0, long a1, long a2, long a3, long a4, long a5) {
    return syscall(number, a0, a1, a2, a3, a4, a5);
}

int patina_git_set_owner_validation(int enabled) {
    return git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, enabled);
}

int patina_git_set_strict_hash_verification(int enabled) {
    return git_libgit2_opts(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, enabled);
}

int patina_git_set_search_path_empty(int level) {
    return git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, level, "");
}

int patina_git_repository_set_index(struct git_repository *repo, struct git_index *index) {
    return git_repository_set_index(repo, index);
}

// Writes `text` to a /proc file of `pid`; 0 or an errno.
static int patina_write_proc(pid_t pid, const char *file, const char *text) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    size_t length = strlen(text);
    ssize_t written = write(fd, text, length);
    int saved = errno;
    close(fd);
    return written == (ssize_t)length ? 0 : (written < 0 ? saved : EIO);
}

int patina_idmapped_mount(const char *source, const char *target,
                          uint32_t disk_uid, uint32_t disk_gid, uint32_t view_uid, uint32_t view_gid,
                          int *stage) {
    *stage = PATINA_IDMAP_USERNS;
    // A child in a new user namespace whose only ids are disk_uid/gid, seen by the
    // kernel as view_uid/gid; its namespace file is all the mount needs.
    int ready[2], release[2];
    if (pipe2(ready, O_CLOEXEC) != 0) return errno;
    if (pipe2(release, O_CLOEXEC) != 0) { int e = errno; close(ready[0]); close(ready[1]); return e; }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(ready[0]); close(ready[1]); close(release[0]); close(release[1]);
        return e;
    }
    if (pid == 0) {
        // Only async-signal-safe calls in the child of a multithreaded process.
        // fork copied every descriptor open at that moment, O_CLOEXEC or not (nothing is
        // exec'd): among them the pipes of another thread's mount. A child blocked below
        // while holding another child's release pipe keeps that one waiting, and it
        // ours: both parents then wait in waitpid for ever. Keep only our own two ends.
        patina_close_all_but(ready[1], release[0]);
        char status = unshare(CLONE_NEWUSER) == 0 ? 0 : 1;
        (void)!write(ready[1], &status, 1);
        char byte;
        close(release[1]);
        (void)!read(release[0], &byte, 1);
        _exit(0);
    }
    close(ready[1]);
    close(release[0]);
    char status = 1;
    int rc = 0;
    if (read(ready[0], &status, 1) != 1 || status != 0) rc = EPERM;
    int userns = -1;
    if (rc == 0) {
        char map[64];
        snprintf(map, sizeof map, "%u %u 1\n", disk_uid, view_uid);
        *stage = PATINA_IDMAP_MAP;
        rc = patina_write_proc(pid, "uid_map", map);
        if (rc == 0) {
            snprintf(map, sizeof map, "%u %u 1\n", disk_gid, view_gid);
            rc = patina_write_proc(pid, "gid_map", map);
        }
        if (rc == 0) {
            char path[64];
            snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
            userns = open(path, O_RDONLY | O_CLOEXEC);
            if (userns < 0) rc = errno;
        }
    }
    close(release[1]);
    close(ready[0]);
    // The namespace is held by `userns` now; the child has nothing left to do. Killed
    // rather than waited for: its exit must not hang on a pipe end some other forked
    // child may still hold for a moment.
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    if (rc != 0) { if (userns >= 0) close(userns); return rc; }

    *stage = PATINA_IDMAP_CLONE;
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
    if (tree < 0) { rc = errno; close(userns); return rc; }
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    attr.userns_fd = (uint64_t)userns;
    *stage = PATINA_IDMAP_SETATTR;
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) rc = errno;
    close(userns);
    if (rc == 0) {
        *stage = PATINA_IDMAP_MOVE;
        if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) != 0) rc = errno;
    }
    close(tree);
    return rc;
}

int patina_detach_mount(const char *target) {
    // <sys/mount.h> (umount2, its flags) and <linux/mount.h> clash in glibc 2.36.
    const long detach = 2, nofollow = 8;
    return syscall(SYS_umount2, target, detach | nofollow) == 0 ? 0 : errno;
}

int patina_overlay_mount(const char *target, const char *options) {
    // MS_NOSUID | MS_NODEV and MS_PRIVATE, spelled out for the same clash as above.
    const unsigned long nosuid = 2, nodev = 4, private_ = 1UL << 18;
    if (syscall(SYS_mount, "overlay", target, "overlay", nosuid | nodev, options) != 0) return errno;
    // Private: on a machine where / is shared, the overlay neither spreads to other mount
    // namespaces nor comes back from them; its detach is the end of it.
    if (syscall(SYS_mount, NULL, target, NULL, private_, NULL) != 0) {
        int error = errno;
        syscall(SYS_umount2, target, 2L);
        return error;
    }
    return 0;
}

int patina_terminal_size(int fd, int *rows, int *columns) {
    struct winsize size;
    if (ioctl(fd, TIOCGWINSZ, &size) != 0) return -1;
    *rows = size.ws_row;
    *columns = size.ws_col;
    return 0;
}
