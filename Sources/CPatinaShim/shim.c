#include "patina_shim.h"

#include <git2.h>
#include <git2/sys/repository.h>
#include <seccomp.h>
#include <sys/syscall.h>
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
