#include "patina_shim.h"

#include <git2.h>
#include <git2/sys/repository.h>
#include <seccomp.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

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
