/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The time bounds of report filters, as the command line gives them, in UTC. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "report.h"

/* @n digits at @s into @ret; false when they are not all digits. */
static bool parse_digits(const char *s, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return true;
}

int journal_parse_time(const char *s, bool until, char ret[static JOURNAL_TIME_MAX])
{
	struct tm tm = { 0 };
	bool date_only = true;
	time_t t;
	int year, mon, day, hour = 0, min = 0, sec = 0;

	if (!s || !ret)
		return -EINVAL;
	if (strcmp(s, "today") == 0 || strcmp(s, "yesterday") == 0) {
		t = time(NULL);
		gmtime_r(&t, &tm);
		tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		if (s[0] == 'y')
			tm.tm_mday--;
	} else {
		if (strlen(s) < 10 || !parse_digits(s, 4, &year) || s[4] != '-' ||
		    !parse_digits(s + 5, 2, &mon) || s[7] != '-' || !parse_digits(s + 8, 2, &day))
			return -EINVAL;
		s += 10;
		if (*s == 'T' || *s == ' ') {
			date_only = false;
			if (!parse_digits(s + 1, 2, &hour) || s[3] != ':' ||
			    !parse_digits(s + 4, 2, &min))
				return -EINVAL;
			s += 6;
			if (*s == ':') {
				if (!parse_digits(s + 1, 2, &sec))
					return -EINVAL;
				s += 3;
			}
		}
		/* The journal is UTC: a Z is allowed, no other zone. */
		if (*s == 'Z')
			s++;
		if (*s || year < 1970 || hour > 23 || min > 59 || sec > 59)
			return -EINVAL;
		tm = (struct tm){ .tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = day,
				  .tm_hour = hour, .tm_min = min, .tm_sec = sec };
		/* timegm() would take 2026-02-30 as March 2nd. */
		t = timegm(&tm);
		if (t == (time_t)-1 || !gmtime_r(&t, &tm) || tm.tm_year != year - 1900 ||
		    tm.tm_mon != mon - 1 || tm.tm_mday != day)
			return -EINVAL;
	}
	/* A day alone for --until means up to its end. */
	if (until && date_only)
		tm.tm_mday++;
	t = timegm(&tm);
	if (t == (time_t)-1 || !gmtime_r(&t, &tm))
		return -EINVAL;
	strftime(ret, JOURNAL_TIME_MAX, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
	return 0;
}
