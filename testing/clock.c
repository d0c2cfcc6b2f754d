/* The pod shares the node's clock: this LD_PRELOAD shim gives a probe run the stand-in
 * kubelet's virtual time. CLOCK_REALTIME (and gettimeofday, time) start at
 * LOG_PROBE_FAKE_NOW_MS and tick; monotonic clocks, and so timeouts, stay real.
 * Built by testing/clock.ts with cc; tests only. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static long long offset_ns;

__attribute__((constructor)) static void start(void) {
  real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
  const char *now = getenv("LOG_PROBE_FAKE_NOW_MS");
  struct timespec ts;
  if (now && real_clock_gettime(CLOCK_REALTIME, &ts) == 0)
    offset_ns = atoll(now) * 1000000LL - (ts.tv_sec * 1000000000LL + ts.tv_nsec);
}

int clock_gettime(clockid_t id, struct timespec *ts) {
  int result = real_clock_gettime(id, ts);
  if (result == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
    long long ns = ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns;
    ts->tv_sec = ns / 1000000000LL;
    ts->tv_nsec = ns % 1000000000LL;
  }
  return result;
}

int gettimeofday(struct timeval *tv, void *tz) {
  struct timespec ts;
  int result = clock_gettime(CLOCK_REALTIME, &ts);
  if (result == 0 && tv) {
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
  }
  return result;
}

time_t time(time_t *t) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (t) *t = ts.tv_sec;
  return ts.tv_sec;
}
