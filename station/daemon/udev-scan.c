/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * udev's side: the monitor's events and the start-up enumeration turned
 * into "a card arrived", "changed" or "left" for the card of that disk.
 */
#include <errno.h>
#include <inttypes.h>
#include <libudev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager.h"
#include "util.h"

void udev_scan_device(struct station *st, struct udev_device *u, const char *action)
{
	struct device d;
	struct card *c;
	char label[512];
	bool removal;

	if (device_from_udev(u, st->cfg->require_tag, &d) < 0)
		return;
	if (device_never_candidate(&d)) {
		device_clear(&d);
		return;
	}
	c = card_find(st, d.syspath);
	removal = strcmp(action, "remove") == 0 || d.size == 0;
	if (!c) {
		if (removal) {
			device_clear(&d);
			return;
		}
		c = card_new(st);
		if (!c) {
			device_clear(&d);
			return;
		}
	}

	if (removal) {
		if (c->dev.size > 0 && c->dev.tagged)
			hooks_run(st, c, HOOK_REMOVE, NULL, c->job);
		if (c->state == CARD_RUNNING) {
			c->removed = true;
			manager_stop_worker(c);
			log_info("%s: removed during job %" PRId64 ", stopping its worker",
				 card_label(c, label, sizeof(label)), c->job);
		} else if (c->state == CARD_WAITING || c->state == CARD_PROBING) {
			log_info("%s: removed before its turn",
				 card_label(c, label, sizeof(label)));
			c->state = CARD_IDLE;
		}
		c->handled = false;
		if (c->state != CARD_RUNNING) {
			c->state = CARD_IDLE;
			if (c->dev.tagged)
				journal_live_clear(st->journal, c->dev.syspath);
		}
		c->dev.size = 0;
		device_clear(&d);
		return;
	}

	/* udev's re-probe after our own writes, or a change on the same medium. */
	if (udev_device_get_property_value(u, "SYNTH_UUID") || c->state == CARD_RUNNING ||
	    c->state == CARD_WAITING || c->state == CARD_PROBING ||
	    (c->handled && (d.diskseq == 0 || d.diskseq == c->handled_diskseq))) {
		device_clear(&d);
		return;
	}

	/* A new medium in this device: an insertion. */
	device_clear(&c->dev);
	c->dev = d;
	free(c->slot_name);
	c->slot_name = c->dev.id_path && config_slot_name(st->cfg, c->dev.id_path)
			   ? strdup(config_slot_name(st->cfg, c->dev.id_path))
			   : NULL;
	c->handled = true;
	c->handled_diskseq = c->dev.diskseq;
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
	log_info("%s: inserted (%s, %" PRIu64 " bytes)", card_label(c, label, sizeof(label)),
		 action, c->dev.size);
	card_enqueue(st, c);
	card_live_update(st, c, true);
	if (c->dev.tagged) {
		const char *o = c->has_outcome ? outcome_name(c->outcome) : NULL;

		hooks_run(st, c, HOOK_INSERT, o, c->job);
		if (c->has_outcome && c->outcome == OUTCOME_REFUSED)
			hooks_run(st, c, HOOK_FAILURE, o, c->job);
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
				continue;
			}
			return;
		}
		udev_scan_device(st, u,
				 udev_device_get_action(u) ? udev_device_get_action(u) : "change");
		udev_device_unref(u);
	}
}
