/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The station's event loop, and only that: signals (a signalfd), the udev
 * monitor, the workers' pipes and a half-second tick for timers and the
 * outbox. What happens on each event is in manager.h's files. Only this
 * process touches SQLite and libudev; workers never do.
 */
#include <errno.h>
#include <fcntl.h>
#include <libudev.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "cache.h"
#include "manager.h"
#include "station.h"
#include "util.h"

#define MONITOR_RCVBUF (128 * 1024 * 1024)
/* The journal waits this long for another process's lock, then the write is
 * retried from the main loop, so a long lock never freezes the station. */
#define JOURNAL_WAIT_MS 500
#define JOURNAL_STOP_GRACE 20.0 /* on stop, how long unrecorded rows are retried */

static void reload(struct station *st, const char *path)
{
	struct station_config *cfg = NULL;
	char *err = NULL;

	if (config_load(path, &cfg, &err) < 0) {
		log_err("SIGHUP: keeping the old configuration: %s", err ? err : "cannot load");
		free(err);
		return;
	}
	if (strcmp(cfg->database, st->cfg->database) != 0)
		log_warn("SIGHUP: the database setting changed; it takes effect at the next start");
	config_keep_database(cfg, st->cfg);
	config_free(st->cfg);
	st->cfg = cfg;
	log_info("SIGHUP: configuration reloaded from %s (%zu profiles)", path, cfg->n_profiles);
	/* The image cache's entries for the profiles as they are now. */
	prefill_stop(st, false);
	prefill_start(st);
	manager_schedule(st);
}

static void on_sigpipe(int sig)
{
	(void)sig;
}

/* Cards in the queue, their bmap being read or not: the log and STATUS=
 * count them alike. */
static unsigned cards_waiting(const struct station *st)
{
	unsigned n = 0;

	for (const struct card *c = st->cards; c; c = c->next)
		n += c->state == CARD_WAITING || c->state == CARD_PROBING;
	return n;
}

/* SIGUSR1 and the like: said in the log with what the station is doing. */
static void log_signal(struct station *st, const struct signalfd_siginfo *si)
{
	unsigned cards = 0, waiting = cards_waiting(st);

	for (struct card *c = st->cards; c; c = c->next)
		cards++;
	log_notice("signal %s from pid %u ignored: %u card(s) known, %u job(s) running, %u "
		   "waiting, %s",
		   strsignal((int)si->ssi_signo), si->ssi_pid, cards, st->running, waiting,
		   st->pending ? "records waiting for the journal" : "the journal up to date");
}

/*
 * systemd's side (Type=notify): READY=1 once the station listens, STATUS=
 * with what it does, WATCHDOG=1 from the loop at a quarter of WatchdogSec=
 * (a loop that hangs gets the station restarted), STOPPING=1. Without
 * $NOTIFY_SOCKET these do nothing.
 */
static void notify_tick(struct station *st, bool force)
{
	static double last_ping, last_status;
	static unsigned last_running = UINT_MAX, last_waiting = UINT_MAX;
	static uint64_t watchdog_usec;
	static int watchdog = -1;
	double now = now_monotonic();
	unsigned waiting;

	if (watchdog < 0)
		watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
	if (watchdog && (force || now - last_ping >= (double)watchdog_usec / 4e6)) {
		sd_notify(0, "WATCHDOG=1");
		last_ping = now;
	}
	waiting = cards_waiting(st);
	if (!force && (st->running == last_running && waiting == last_waiting))
		return;
	if (!force && now - last_status < 1.0)
		return;
	sd_notifyf(0, "STATUS=station '%s': %u job(s) running, %u waiting%s", st->cfg->name,
		   st->running, waiting, st->pending ? ", journal writes pending" : "");
	last_running = st->running;
	last_waiting = waiting;
	last_status = now;
}

static int setup(struct station *st, const char *config_path)
{
	char *err = NULL;
	sigset_t mask;

	st->pending_tail = &st->pending;
	if (config_load(config_path, &st->cfg, &err) < 0) {
		log_err("%s", err ? err : "cannot load the configuration");
		free(err);
		return -EINVAL;
	}
	if (journal_open_station(st->cfg->database, &st->journal, &err) < 0) {
		log_err("%s", err ? err : "cannot open the journal");
		free(err);
		return -EIO;
	}
	if (outbox_open(st) < 0)
		return -EIO;
	journal_live_clear(st->journal, NULL);
	journal_set_busy_timeout(st->journal, JOURNAL_WAIT_MS);
	manager_interrupt_earlier(st);

	cache_sweep(st->cfg->cache_dir);
	/* The image cache's filler outlives the worker that forked it (it
	 * belongs to no card): it comes back to the station, which reaps it,
	 * and it stops once it finds itself anyone else's child. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	/* A log reader that goes away must not end the station (SIGPIPE's
	 * default): the write fails instead. A handler, not SIG_IGN, so that
	 * hooks and workers start with the default again at exec(). */
	sigaction(SIGPIPE, &(struct sigaction){.sa_handler = on_sigpipe}, NULL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	/* Signals whose default would end the station without a word. */
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, SIGALRM);
	sigaddset(&mask, SIGVTALRM);
	sigaddset(&mask, SIGPROF);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	st->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (st->sfd < 0) {
		log_err("signalfd: %m");
		return -errno;
	}

	st->udev = udev_new();
	if (!st->udev) {
		log_err("cannot talk to udev");
		return -EIO;
	}
	/* The monitor first, then the devices already present: a card can be
	 * seen twice (deduplicated) but never missed. */
	st->mon = udev_monitor_new_from_netlink(st->udev, "udev");
	if (!st->mon ||
	    udev_monitor_filter_add_match_subsystem_devtype(st->mon, "block", "disk") < 0 ||
	    udev_monitor_enable_receiving(st->mon) < 0) {
		log_err("cannot listen to udev events (is systemd-udevd running?)");
		return -EIO;
	}
	udev_monitor_set_receive_buffer_size(st->mon, MONITOR_RCVBUF);
	fcntl(udev_monitor_get_fd(st->mon), F_SETFL, O_NONBLOCK);
	log_info("station '%s' running: %zu profile(s), up to %u worker(s), journal %s",
		 st->cfg->name, st->cfg->n_profiles, st->cfg->max_workers, st->cfg->database);
	/* Before the cards already present are seen: their workers follow
	 * the prefill's fills. */
	prefill_start(st);
	udev_scan_enumerate(st);
	sd_notify(0, "READY=1");
	notify_tick(st, true);
	return 0;
}

int station_run(const char *config_path)
{
	struct station st = {.sfd = -1};
	int ret = EXIT_FAILURE;

	if (setup(&st, config_path) < 0)
		goto out;
	for (;;) {
		struct pollfd pfd[2 + 64];
		struct card *owners[64];
		nfds_t n = 0;
		int r;

		/* A damaged journal takes no row again: stop, never retry for ever. */
		if (!st.stopping && journal_damaged(st.journal) && raise(SIGTERM) == 0)
			log_err("%s; stopping the station", journal_damaged(st.journal));
		if (st.stopping && st.running == 0 && !st.hooks && !prefill_running(&st)) {
			outbox_flush(&st, false);
			if (!st.pending)
				break;
			if (st.stop_deadline == 0) {
				st.stop_deadline = now_monotonic() + JOURNAL_STOP_GRACE;
				log_info("stopping: waiting up to %.0f s for the journal to take "
					 "what it still lacks",
					 JOURNAL_STOP_GRACE);
			} else if (now_monotonic() > st.stop_deadline) {
				outbox_give_up(&st);
				break;
			}
		}
		pfd[n++] = (struct pollfd){.fd = st.sfd, .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = udev_monitor_get_fd(st.mon), .events = POLLIN};
		for (struct card *c = st.cards; c && n < 2 + 64; c = c->next)
			if (c->state == CARD_RUNNING && c->pipe_fd >= 0) {
				owners[n - 2] = c;
				pfd[n++] = (struct pollfd){.fd = c->pipe_fd, .events = POLLIN};
			}
		r = poll(pfd, n, 500);
		if (r < 0 && errno != EINTR) {
			log_err("poll: %m");
			break;
		}
		for (nfds_t i = 2; r > 0 && i < n; i++)
			if (pfd[i].revents) {
				struct card *c = owners[i - 2];

				if (card_read_pipe(&st, c)) {
					close(c->pipe_fd);
					c->pipe_fd = -1;
				}
			}
		if (r > 0 && pfd[0].revents) {
			struct signalfd_siginfo si;

			while (read(st.sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD) {
					manager_reap(&st);
				} else if (si.ssi_signo == SIGHUP) {
					reload(&st, config_path);
				} else if (si.ssi_signo != SIGTERM && si.ssi_signo != SIGINT) {
					log_signal(&st, &si);
				} else if (!st.stopping) {
					log_notice(
					    "signal %u: stopping; running jobs are interrupted",
					    si.ssi_signo);
					st.stopping = true;
					sd_notify(0, "STOPPING=1");
					prefill_stop(&st, true);
					for (struct card *c = st.cards; c; c = c->next)
						if (c->state == CARD_RUNNING) {
							c->stopping = true;
							manager_stop_worker(c);
						}
				}
			}
		}
		if (r > 0 && pfd[1].revents && !st.stopping)
			udev_scan_drain(&st);
		manager_reap(&st);
		manager_check_timers(&st);
		notify_tick(&st, false);
		outbox_flush(&st, false);
		manager_schedule(&st);
	}
	log_info("stopped");
	ret = EXIT_SUCCESS;
out:
	outbox_give_up(&st);
	while (st.cards) {
		struct card *next = st.cards->next;

		if (st.cards->pipe_fd >= 0)
			close(st.cards->pipe_fd);
		card_free(st.cards);
		st.cards = next;
	}
	probe_free_all(&st);
	if (st.mon)
		udev_monitor_unref(st.mon);
	if (st.udev)
		udev_unref(st.udev);
	if (st.sfd >= 0)
		close(st.sfd);
	journal_close(st.journal);
	outbox_close(&st);
	config_free(st.cfg);
	return ret;
}
