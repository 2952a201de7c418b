/* Runs a command under a seccomp filter that forces the library's fallbacks.
 *   seccomp_launcher clone3-enosys CMD...   clone3 fails with ENOSYS (kernels before 5.3)
 *   seccomp_launcher clone3-eperm CMD...    clone3 fails with EPERM (container profiles)
 *   seccomp_launcher no-pidfd CMD...        clone3 ENOSYS, clone(CLONE_PIDFD) EINVAL, pidfd_open
 *                                           and pidfd_send_signal ENOSYS (kernels before 5.2)
 *   seccomp_launcher no-close-range CMD...  close_range ENOSYS (kernels before 5.9)
 *   seccomp_launcher no-unshare CMD...      close_range with CLOSE_RANGE_UNSHARE and unshare EPERM
 *                                           (a profile that refuses unsharing, like Docker's
 *                                           default without CAP_SYS_ADMIN)
 *   seccomp_launcher no-reaper CMD...       clone with CLONE_FS but without CLONE_THREAD fails with
 *                                           EINVAL: the reaper's clone, refused as qemu-user refuses
 *                                           it (threads, vfork children and clone3 are allowed)
 *   seccomp_launcher qemu CMD...            what qemu-user 7.2 refuses: clone3 fails with ENOSYS; a
 *                                           clone that is not a thread fails with EINVAL when it has
 *                                           CLONE_VM without CLONE_VFORK, CLONE_FILES or CLONE_PIDFD,
 *                                           or an exit signal other than SIGCHLD (qemu-user turns the
 *                                           vfork it allows into a fork; here it stays a vfork)
 * The filter is inherited by every thread and process the command starts. x86_64 and aarch64.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH 0xc000003e /* AUDIT_ARCH_X86_64 */
#elif defined(__aarch64__)
#define ARCH 0xc00000b7 /* AUDIT_ARCH_AARCH64 */
#endif
#define CLONE_PIDFD_FLAG 0x1000
#define CLOSE_RANGE_UNSHARE_FLAG 0x2
#define CLONE_FS_FLAG 0x200
#define CLONE_THREAD_FLAG 0x10000
#define CLONE_VM_FLAG 0x100
#define CLONE_FILES_FLAG 0x400
#define CLONE_VFORK_FLAG 0x4000
#define SIGCHLD_NUMBER 17

#define NR(name) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, name, 0, 1)
#define FAIL(e) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (e))
#define LOAD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
/* A filter's last rule: syscall `nr` fails with `e` when argument `arg` (its low 32 bits, on
 * little-endian) has `flag` set; everything else is allowed. */
#define LAST_FAILS_WITH_FLAG(nr, arg, flag, e)                                          \
  BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 1, 0), ALLOW,                                 \
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[arg])),     \
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, flag, 0, 1), FAIL(e), ALLOW
/* Every filter starts so: allow other architectures' calls, then load the syscall number. */
#define SYSCALL_ON_THIS_ARCH \
  LOAD(arch), BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0), ALLOW, LOAD(nr)

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s clone3-enosys|clone3-eperm|no-pidfd|no-close-range|no-unshare|no-reaper|qemu CMD...\n",
            argv[0]);
    return 2;
  }
  int clone3_errno = strcmp(argv[1], "clone3-eperm") == 0 ? EPERM : ENOSYS;
  int no_pidfd = strcmp(argv[1], "no-pidfd") == 0;
  int no_close_range = strcmp(argv[1], "no-close-range") == 0;
  int no_unshare = strcmp(argv[1], "no-unshare") == 0;
  int no_reaper = strcmp(argv[1], "no-reaper") == 0;
  int like_qemu = strcmp(argv[1], "qemu") == 0;
  if (!no_pidfd && !no_close_range && !no_unshare && !no_reaper && !like_qemu && strcmp(argv[1], "clone3-enosys") != 0 &&
      strcmp(argv[1], "clone3-eperm") != 0) {
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
  }
  struct sock_filter with_pidfd[] = {
      SYSCALL_ON_THIS_ARCH,
      NR(__NR_clone3),
      FAIL(clone3_errno),
      ALLOW,
  };
  struct sock_filter without_pidfd[] = {
      SYSCALL_ON_THIS_ARCH,
      NR(__NR_clone3),
      FAIL(ENOSYS),
      NR(__NR_pidfd_open),
      FAIL(ENOSYS),
      NR(__NR_pidfd_send_signal),
      FAIL(ENOSYS),
      /* clone's flags are its first argument. */
      LAST_FAILS_WITH_FLAG(__NR_clone, 0, CLONE_PIDFD_FLAG, EINVAL),
  };
  struct sock_filter without_close_range[] = {
      SYSCALL_ON_THIS_ARCH,
      NR(__NR_close_range),
      FAIL(ENOSYS),
      ALLOW,
  };
  struct sock_filter without_unshare[] = {
      SYSCALL_ON_THIS_ARCH,
      NR(__NR_unshare),
      FAIL(EPERM),
      /* close_range's flags are its third argument. */
      LAST_FAILS_WITH_FLAG(__NR_close_range, 2, CLOSE_RANGE_UNSHARE_FLAG, EPERM),
  };
  struct sock_filter without_reaper[] = {
      SYSCALL_ON_THIS_ARCH,
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 1, 0),
      ALLOW,
      /* clone's flags are its first argument: threads pass, a process sharing our fs fails. */
      LOAD(args[0]),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD_FLAG, 0, 1),
      ALLOW,
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_FS_FLAG, 0, 1),
      FAIL(EINVAL),
      ALLOW,
  };
  struct sock_filter as_qemu[] = {
      SYSCALL_ON_THIS_ARCH,
      NR(__NR_clone3),
      FAIL(ENOSYS),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 1, 0),
      ALLOW,
      LOAD(args[0]),
      /* Threads pass. */
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD_FLAG, 0, 1),
      ALLOW,
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_FILES_FLAG | CLONE_PIDFD_FLAG, 0, 1),
      FAIL(EINVAL),
      /* CLONE_VM only with CLONE_VFORK (which qemu-user makes a fork). */
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_VM_FLAG, 0, 2),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_VFORK_FLAG, 1, 0),
      FAIL(EINVAL),
      /* The exit signal, the flags' low byte, must be SIGCHLD. */
      BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xff),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SIGCHLD_NUMBER, 1, 0),
      FAIL(EINVAL),
      ALLOW,
  };
#define PROG(filter) ((struct sock_fprog){sizeof filter / sizeof *filter, filter})
  struct sock_fprog prog = no_pidfd         ? PROG(without_pidfd)
                           : no_close_range ? PROG(without_close_range)
                           : no_unshare     ? PROG(without_unshare)
                           : no_reaper      ? PROG(without_reaper)
                           : like_qemu      ? PROG(as_qemu)
                                            : PROG(with_pidfd);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    perror("seccomp");
    return 1;
  }
  execvp(argv[2], argv + 2);
  perror(argv[2]);
  return 127;
}
