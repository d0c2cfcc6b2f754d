/*
 * Runs one command and reports what it cost, as the last line on stderr:
 *   {"wallMs": …, "userMs": …, "sysMs": …, "maxRssKiB": …, "code": …}
 * CPU and peak RSS come from wait4(2): the command and every process it
 * waited for (peak RSS is the largest single process). Built static by
 * bench/meter.ts, so it runs in a container image that holds nothing.
 * Usage: rusage SETTLE_SECONDS COMMAND...
 * SETTLE_SECONDS: sleep first, so a CFS quota spent by the sandbox's own setup
 * is refilled before the clock starts.
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
  if (argc < 3) return 125;
  double settle = atof(argv[1]);
  if (settle > 0) usleep((useconds_t)(settle * 1e6));
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  pid_t pid;
  if (posix_spawnp(&pid, argv[2], NULL, NULL, argv + 2, environ) != 0) {
    perror(argv[2]);
    return 127;
  }
  int status;
  struct rusage usage;
  if (wait4(pid, &status, 0, &usage) < 0) return 126;
  clock_gettime(CLOCK_MONOTONIC, &end);
  double wall = (end.tv_sec - start.tv_sec) * 1e3 + (end.tv_nsec - start.tv_nsec) / 1e6;
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  fprintf(stderr,
          "\n{\"wallMs\": %.3f, \"userMs\": %.3f, \"sysMs\": %.3f, \"maxRssKiB\": %ld, \"code\": %d}\n",
          wall, usage.ru_utime.tv_sec * 1e3 + usage.ru_utime.tv_usec / 1e3,
          usage.ru_stime.tv_sec * 1e3 + usage.ru_stime.tv_usec / 1e3, usage.ru_maxrss, code);
  return 0;
}
