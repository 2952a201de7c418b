// A model, in C and without JavaScript, of four ways to start the jobs of a pool, measured in
// one process with the rounds interleaved. Not the library's code: no options, no pipes, no
// error handling beyond what a measurement needs. bench/NOTES.md ("Four spawn designs, modelled
// in C") has the figures and what they mean for the design.
//
//   A  the host starts each child itself with posix_spawn (a vfork in its own thread), as the
//      runtimes' spawners do; it reaps with waitpid.
//   B  the library's design: the host hands each request to a reaper (a CLONE_VM process that
//      never execs) and waits; the reaper vforks the child and answers once it has exec'd.
//      Hand-offs: host -> reaper -> child, execve -> reaper -> host.
//   C  a standby child: the reaper keeps `STANDBY` children cloned in advance (CLONE_VM, no
//      vfork), each asleep on a futex; the host wakes one and is woken by the kernel at its
//      execve (CLONE_CHILD_CLEARTID clears a word and wakes it); the reaper makes another.
//      Hand-offs: host -> standby, execve -> host.
//   D  an asynchronous spawn: the host queues a request and goes on; the reaper takes every
//      queued request at each wake-up and answers each (its pid) through the exit pipe, which
//      the host reads with the exits.
//
// In B, C and D the reaper reaps every child (signalfd, waitpid) and writes its pid to a pipe
// the host reads. Each child is `sh -c 'echo job'` with its stdout on /dev/null. BUSY_US makes
// the host spend that much CPU after each exit, as a JavaScript thread does per job.
//
//   cc -O2 -o /tmp/spawn_designs bench/spawn_designs.c
//   BUSY_US=200 /tmp/spawn_designs 2000 3 8      # jobs per round, rounds, jobs in flight
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STACK_BYTES (64 * 1024)
#define STANDBY 4

enum { ASK_SPAWN = 1, ASK_STANDBY = 2, ASK_QUEUE = 4 };

struct standby {
  _Atomic int go;
  _Atomic int ready;
  int tid_word; // CLONE_CHILD_CLEARTID: the kernel writes 0 at the child's execve or exit
  pid_t pid;
  int pidfd;
  char *stack;
};

extern char **environ;
static char *argv_sh[] = {"/bin/sh", "-c", "echo job", NULL};
static int request_efd, exit_pipe[2], host_pidfd;
static char *vfork_stack;
static _Atomic int asked, answered, queued, standby_wanted, cpu_wanted;
static _Atomic pid_t answer_pid;
static _Atomic uint64_t reaper_cpu_ns;
static struct standby standby[STANDBY];
static int standby_next;
static uint64_t busy_ns, standby_wait_ns;

static long futex_wait(void *word, int value, int private) {
  return syscall(SYS_futex, word, private ? FUTEX_WAIT_PRIVATE : FUTEX_WAIT, value, NULL, NULL, 0);
}
static long futex_wake(void *word) {
  return syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1 << 30, NULL, NULL, 0);
}
static uint64_t clock_ns(clockid_t clock) {
  struct timespec t;
  clock_gettime(clock, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}
static uint64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

// The child's side, raw system calls only (it shares the reaper's memory).
static void exec_job(void) {
  int fd = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_WRONLY);
  syscall(SYS_dup2, fd, 1);
  syscall(SYS_close, fd);
  sigset_t none;
  sigemptyset(&none);
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, 8);
  syscall(SYS_execve, argv_sh[0], argv_sh, environ);
  syscall(SYS_exit, 127);
}
static int vfork_child(void *arg) {
  (void)arg;
  exec_job();
  return 127;
}
static int standby_child(void *arg) {
  struct standby *s = arg;
  syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  while (atomic_load(&s->go) == 0) futex_wait(&s->go, 0, 1);
  exec_job();
  return 127;
}

static void make_standby(int index) {
  struct standby *s = &standby[index];
  atomic_store(&s->go, 0);
  s->tid_word = 1;
  int pidfd = -1;
  int flags = CLONE_VM | CLONE_PIDFD | CLONE_CHILD_CLEARTID | SIGCHLD;
  pid_t pid = clone(standby_child, s->stack + STACK_BYTES, flags, s, &pidfd, NULL, &s->tid_word);
  if (pid < 0) {
    perror("clone (standby)");
    _exit(1);
  }
  s->pid = pid;
  s->pidfd = pidfd;
  atomic_store(&s->ready, 1);
  futex_wake(&s->ready);
}

static void serve_requests(void) {
  uint64_t counter;
  if (read(request_efd, &counter, 8) != 8) return;
  int ask = atomic_exchange(&asked, 0);
  if (ask & ASK_SPAWN) {
    atomic_store(&answer_pid, clone(vfork_child, vfork_stack + STACK_BYTES, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL));
    atomic_store(&answered, 1);
    futex_wake(&answered);
  }
  if (ask & ASK_QUEUE) {
    for (; atomic_load(&queued) > 0; atomic_fetch_sub(&queued, 1)) {
      // The answer goes into the exit pipe, as a negative pid, for the host's event loop.
      pid_t answer = -clone(vfork_child, vfork_stack + STACK_BYTES, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
      if (write(exit_pipe[1], &answer, sizeof answer) != sizeof answer) _exit(1);
    }
  }
  if (ask & ASK_STANDBY) {
    int wanted = atomic_exchange(&standby_wanted, 0);
    for (int i = 0; i < STANDBY; i++) {
      if (wanted & (1 << i)) make_standby(i);
    }
  }
  if (atomic_exchange(&cpu_wanted, 0)) {
    atomic_store(&reaper_cpu_ns, clock_ns(CLOCK_THREAD_CPUTIME_ID));
  }
}

static void reap_all(int signal_fd) {
  struct signalfd_siginfo info;
  while (read(signal_fd, &info, sizeof info) > 0) {}
  int status;
  for (pid_t pid; (pid = waitpid(-1, &status, WNOHANG)) > 0;) {
    if (write(exit_pipe[1], &pid, sizeof pid) != sizeof pid) _exit(1);
  }
}

static int reaper_main(void *arg) {
  (void)arg;
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  int signal_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  int watched[] = {request_efd, signal_fd, host_pidfd};
  for (int i = 0; i < 3; i++) {
    struct epoll_event event = {.events = EPOLLIN, .data.fd = watched[i]};
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, watched[i], &event);
  }
  for (;;) {
    struct epoll_event events[3];
    int count = epoll_wait(epoll_fd, events, 3, -1);
    for (int i = 0; i < count; i++) {
      int fd = events[i].data.fd;
      if (fd == host_pidfd) syscall(SYS_exit_group, 0); // the host is gone
      if (fd == request_efd) serve_requests();
      if (fd == signal_fd) reap_all(signal_fd);
    }
  }
  return 0;
}

static void ask(int what) {
  atomic_fetch_or(&asked, what);
  uint64_t one = 1;
  if (write(request_efd, &one, 8) != 8) _exit(1);
}

static pid_t spawn_a(void) {
  static posix_spawn_file_actions_t actions;
  static int ready;
  if (!ready) {
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    ready = 1;
  }
  pid_t pid = -1;
  posix_spawn(&pid, argv_sh[0], &actions, NULL, argv_sh, environ);
  return pid;
}

static pid_t spawn_b(void) {
  atomic_store(&answered, 0);
  ask(ASK_SPAWN);
  while (atomic_load(&answered) == 0) futex_wait(&answered, 0, 1);
  return atomic_load(&answer_pid);
}

static pid_t spawn_c(void) {
  struct standby *s = &standby[standby_next];
  uint64_t start_ns = now_ns();
  while (atomic_load(&s->ready) == 0) futex_wait(&s->ready, 0, 1);
  standby_wait_ns += now_ns() - start_ns;
  atomic_store(&s->ready, 0);
  atomic_store(&s->go, 1);
  futex_wake(&s->go);
  // The kernel's wake-up at execve is a shared futex: wait without FUTEX_PRIVATE_FLAG.
  for (int word; (word = __atomic_load_n(&s->tid_word, __ATOMIC_ACQUIRE)) != 0;) futex_wait(&s->tid_word, word, 0);
  close(s->pidfd);
  atomic_fetch_or(&standby_wanted, 1 << standby_next); // its stack is free again
  standby_next = (standby_next + 1) % STANDBY;
  ask(ASK_STANDBY);
  return s->pid;
}

static pid_t spawn_d(void) {
  atomic_fetch_add(&queued, 1);
  ask(ASK_QUEUE);
  return 1;
}

static uint64_t reaper_cpu(void) {
  uint64_t before = atomic_load(&reaper_cpu_ns);
  atomic_store(&cpu_wanted, 1);
  ask(0);
  while (atomic_load(&reaper_cpu_ns) == before) usleep(100);
  return atomic_load(&reaper_cpu_ns);
}

static int by_value(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void pool(char design, int jobs, int width) {
  uint64_t *call_ns = malloc(sizeof(uint64_t) * (size_t)jobs);
  uint64_t reaper0 = design == 'A' ? 0 : reaper_cpu();
  uint64_t host0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), start_ns = now_ns();
  int started = 0, finished = 0, in_flight = 0;
  standby_wait_ns = 0;
  while (finished < jobs) {
    while (in_flight < width && started < jobs) {
      uint64_t call_start_ns = now_ns();
      pid_t pid = design == 'A' ? spawn_a() : design == 'B' ? spawn_b() : design == 'C' ? spawn_c() : spawn_d();
      call_ns[started++] = now_ns() - call_start_ns;
      if (pid <= 0) {
        fprintf(stderr, "spawn failed (%c)\n", design);
        exit(1);
      }
      in_flight++;
    }
    pid_t pid;
    int status;
    if (design == 'A') {
      pid = waitpid(-1, &status, 0);
    } else if (read(exit_pipe[0], &pid, sizeof pid) != sizeof pid) {
      exit(1);
    }
    if (pid < 0) continue; // D's answer to a spawn
    in_flight--;
    finished++;
    for (uint64_t busy_start_ns = now_ns(); now_ns() - busy_start_ns < busy_ns;) {}
  }
  double per_job_us = 1e3 * jobs;
  double wall = (double)(now_ns() - start_ns) / per_job_us;
  double host = (double)(clock_ns(CLOCK_PROCESS_CPUTIME_ID) - host0) / per_job_us;
  double reaper = design == 'A' ? 0 : (double)(reaper_cpu() - reaper0) / per_job_us;
  qsort(call_ns, (size_t)jobs, sizeof *call_ns, by_value);
  printf("%c %d wide: wall %5.0f  spawn call p50 %5.0f p90 %5.0f  cpu: host %4.0f reaper %4.0f", design, width, wall,
         call_ns[jobs / 2] / 1e3, call_ns[jobs * 9 / 10] / 1e3, host, reaper);
  if (design == 'C') printf("  (waited for a standby %.0f)", (double)standby_wait_ns / per_job_us);
  printf("  us/job\n");
  fflush(stdout);
  free(call_ns);
}

static char *stack(size_t bytes) {
  char *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (memory == MAP_FAILED) {
    perror("mmap");
    exit(1);
  }
  return memory;
}

int main(int argc, char **argv) {
  int jobs = argc > 1 ? atoi(argv[1]) : 2000, rounds = argc > 2 ? atoi(argv[2]) : 3;
  int width = argc > 3 ? atoi(argv[3]) : 8;
  busy_ns = getenv("BUSY_US") ? (uint64_t)atoi(getenv("BUSY_US")) * 1000u : 0;
  host_pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
  request_efd = eventfd(0, EFD_CLOEXEC);
  if (host_pidfd < 0 || request_efd < 0 || pipe2(exit_pipe, O_CLOEXEC) != 0) {
    perror("setup");
    return 1;
  }
  vfork_stack = stack(STACK_BYTES);
  for (int i = 0; i < STANDBY; i++) standby[i].stack = stack(STACK_BYTES);
  size_t reaper_stack_bytes = 1 << 20;
  char *reaper_stack = stack(reaper_stack_bytes);
  // The reaper starts with every signal blocked (it reads SIGCHLD through its signalfd).
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SYSVSEM;
  if (clone(reaper_main, reaper_stack + reaper_stack_bytes, flags, NULL) < 0) {
    perror("clone (reaper)");
    return 1;
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  atomic_store(&standby_wanted, (1 << STANDBY) - 1);
  ask(ASK_STANDBY);
  for (int i = 0; i < STANDBY; i++) {
    while (atomic_load(&standby[i].ready) == 0) usleep(100);
  }
  for (int round = 0; round < rounds; round++) {
    pool('A', jobs, width);
    pool('B', jobs, width);
    pool('C', jobs, width);
    pool('D', jobs, width);
  }
  return 0;
}
