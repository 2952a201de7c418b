/* The floor: spawning from C with no runtime around it.
 *   c_baseline posix_spawn N PROGRAM   median microseconds of posix_spawn + waitpid
 *   c_baseline vfork N PROGRAM         median microseconds of vfork + execve + waitpid
 * Prints one JSON object: every sample and their median.
 */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  int use_vfork = strcmp(argv[1], "vfork") == 0;
  int n = atoi(argv[2]);
  char *child_argv[] = {argv[3], NULL};
  double *t = calloc(n, sizeof *t);
  for (int i = 0; i < n; i++) {
    double start = now_us();
    pid_t pid;
    if (use_vfork) {
      pid = vfork();
      if (pid == 0) {
        execve(argv[3], child_argv, environ);
        _exit(127);
      }
    } else if (posix_spawn(&pid, argv[3], NULL, NULL, child_argv, environ) != 0) {
      return 1;
    }
    int status;
    waitpid(pid, &status, 0);
    t[i] = now_us() - start;
  }
  /* Every sample, in order, so a caller can pool them with its own; then the median. */
  printf("{\"samplesUs\": [");
  for (int i = 0; i < n; i++) printf(i == 0 ? "%.2f" : ", %.2f", t[i]);
  qsort(t, n, sizeof *t, cmp);
  printf("], \"medianUs\": %.2f, \"n\": %d}\n", t[n / 2], n);
  return 0;
}
