/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * udev's side: the monitor's events and the start-up enumeration turned
 * into "a card arrived" or "left" for the card of that disk: a medium with
 * a new DISKSEQ is a new card, whatever the state of the one before it.
 */
#include <errno.h>
#include <inttypes.h>
#include <libudev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager.h"
#include "util.h"

/* The disk's DISKSEQ as it is now (sysfs), not as the event saw it; 0
 * without one (kernels before 5.15). */
static uint64_t current_diskseq(struct udev_device *u)
{
	const char *v = udev_device_get_sysattr_value(u, "diskseq");

	return v ? strtoull(v, NULL, 10) : 0;
}

/* The DISKSEQ of the medium udev's view of the device (tags, serial) was
 * made for. An event's is its own. A disk enumerated from udev's database
 * gets the kernel's DISKSEQ of now but the identity udev found for the
 * medium of its last event: an older one when the event of the medium
 * there now is still on its way (a loop device reused while we start). The
 * database's by-diskseq link (udev's 60-persistent-storage rules) names
 * that medium; without one, the device's DISKSEQ is all there is. */
static uint64_t viewed_diskseq(struct udev_device *u, uint64_t diskseq)
{
	static const char prefix[] = "/dev/disk/by-diskseq/";
	struct udev_list_entry *e;

	udev_list_entry_foreach(e, udev_device_get_devlinks_list_entry(u))
	{
		const char *link = udev_list_entry_get_name(e);

		if (strncmp(link, prefix, sizeof(prefix) - 1) == 0)
			return strtoull(link + sizeof(prefix) - 1, NULL, 10);
	}
	return diskseq;
}

void udev_scan_device(struct station *st, struct udev_device *u, const char *action)
{
	struct device d;
	struct card *c;
	char how[128];
	bool removal, disk_left, outdated = false;
	uint64_t seq, viewed;

	if (device_from_udev(u, st->cfg->require_tag, &d) < 0)
		return;
	if (device_never_candidate(&d)) {
		device_clear(&d);
		return;
	}
	c = card_find(st, d.syspath);
	disk_left = strcmp(action, "remove") == 0;
	removal = disk_left || d.size == 0;

	/* An event read after the medium changed again (the disk's DISKSEQ
	 * is past the event's), or a disk enumerated before udev is done with
	 * its new medium, tells of a medium that is gone, with udev's view of
	 * it (tags, serial): it ends a card that has an older medium and
	 * inserts nothing; the event of the medium there now follows. */
	seq = current_diskseq(u);
	viewed = viewed_diskseq(u, d.diskseq);
	if (!removal && seq && viewed && viewed < seq) {
		if (!c || c->dev.diskseq >= seq) {
			device_clear(&d);
			return;
		}
		outdated = true;
		d.diskseq = seq;
	}
	/* udev's re-probe after our own writes, or a change on the same medium. */
	if (!removal && !outdated &&
	    (udev_device_get_property_value(u, "SYNTH_UUID") ||
	     (c && (d.diskseq == 0 || d.diskseq == c->dev.diskseq)))) {
		device_clear(&d);
		return;
	}

	if (c) {
		/* The card's medium left: pulled, or swapped for another (a new
		 * DISKSEQ), maybe faster than the events of its going came. */
		if (c->dev.size > 0 && c->dev.tagged)
			hooks_run(st, c, HOOK_REMOVE, NULL, c->job);
		if (removal)
			snprintf(how, sizeof(how), "removed");
		else
			snprintf(how, sizeof(how),
				 "swapped for another (DISKSEQ %" PRIu64 ", now %" PRIu64 ")",
				 c->dev.diskseq, d.diskseq);
		card_gone(st, c, how);
	}
	/* The disk itself left: nothing of it stays in the live view (a card
	 * that left mid-job does not write it again: card_live_update()). */
	if (disk_left)
		journal_live_clear(st->journal, d.syspath);
	if (removal || outdated) {
		device_clear(&d);
		return;
	}

	c = card_new(st);
	if (!c) {
		device_clear(&d);
		return;
	}
	/* A new medium in this device: an insertion. */
	c->dev = d;
	c->slot_name = c->dev.id_path && config_slot_name(st->cfg, c->dev.id_path)
			   ? strdup(config_slot_name(st->cfg, c->dev.id_path))
			   : NULL;
	{
		enum outcome last;

		/* Seen by an earlier run (a restart, or events lost and the disks
		 * looked at again): an interrupted job is done again, anything
		 * else was dealt with. */
		if (journal_last_outcome(st->journal, c->dev.syspath, c->dev.diskseq, &last) == 0 &&
		    last != OUTCOME_INTERRUPTED && last != OUTCOME_RUNNING) {
			c->state = CARD_DONE;
			return;
		}
	}
	log_card(6, c, "inserted (%s, %" PRIu64 " bytes)", action, c->dev.size);
	card_enqueue(st, c);
	card_live_update(st, c, true);
	if (c->dev.tagged) {
		const char *o = c->has_outcome ? outcome_name(c->outcome) : NULL;

		hooks_run(st, c, HOOK_INSERT, o, c->job);
		hooks_run_end(st, c);
	}
	manager_schedule(st);
}

void udev_scan_enumerate(struct station *st)
{
	struct udev_enumerate *en = udev_enumerate_new(st->udev);
	struct udev_list_entry *e;

	if (!en)
		return;
	udev_enumerate_add_match_subsystem(en, "block");
	udev_enumerate_add_match_property(en, "DEVTYPE", "disk");
	/* A disk udev is still working on has no tags or identity yet: its
	 * event comes through the monitor, opened before this scan. */
	udev_enumerate_add_match_is_initialized(en);
	udev_enumerate_scan_devices(en);
	udev_list_entry_foreach(e, udev_enumerate_get_list_entry(en))
	{
		struct udev_device *u =
		    udev_device_new_from_syspath(st->udev, udev_list_entry_get_name(e));

		if (!u)
			continue;
		udev_scan_device(st, u, "present");
		udev_device_unref(u);
	}
	udev_enumerate_unref(en);
}

/* After lost events: the cards whose medium left unseen. A disk udev is
 * still busy with is not enumerated, so sysfs decides: no disk, or size 0.
 * Running cards are the timers' (manager_check_timers()). */
static void udev_scan_sweep(struct station *st)
{
	struct card *next;

	for (struct card *c = st->cards; c; c = next) {
		struct udev_device *u;
		const char *size;
		char *syspath;
		bool gone, disk_gone;

		next = c->next;
		if (c->state == CARD_RUNNING)
			continue;
		errno = 0;
		u = udev_device_new_from_syspath(st->udev, c->dev.syspath);
		disk_gone = !u && errno != ENOMEM;
		size = u ? udev_device_get_sysattr_value(u, "size") : NULL;
		gone = disk_gone || (u && (!size || strtoull(size, NULL, 10) == 0));
		udev_device_unref(u);
		if (!gone)
			continue;
		if (c->dev.tagged)
			hooks_run(st, c, HOOK_REMOVE, NULL, c->job);
		/* As after a 'remove': nothing of a disk that went stays in the
		 * live view (card_gone() frees the card and its syspath). */
		syspath = disk_gone && c->dev.tagged ? strdup(c->dev.syspath) : NULL;
		card_gone(st, c, "removed");
		if (syspath)
			journal_live_clear(st->journal, syspath);
		free(syspath);
	}
}

void udev_scan_drain(struct station *st)
{
	for (;;) {
		struct udev_device *u;

		errno = 0;
		u = udev_monitor_receive_device(st->mon);
		if (!u) {
			if (errno == ENOBUFS) {
				log_warn(
				    "udev events were lost (ENOBUFS); looking at every disk again");
				udev_scan_enumerate(st);
				udev_scan_sweep(st);
				continue;
			}
			return;
		}
		udev_scan_device(st, u,
				 udev_device_get_action(u) ? udev_device_get_action(u) : "change");
		udev_device_unref(u);
	}
}
