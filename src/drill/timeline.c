/*
 * timeline.c - timeline.svg, hand-written SVG: one panel per region with
 * acknowledged writes (green bars) and failed write attempts (red bars) per
 * second, reads served (blue line) and failed (orange ticks), a band where
 * the region accepted writes (from its log; from status polls when the log
 * has no such events), and across both panels the fault, the heal, kills,
 * restarts and role changes.
 */
#include <stdio.h>
#include <string.h>

#include "drill/internal.h"

#define W 1100
#define LEFT 70
#define RIGHT 30
#define TOP 96
#define PANEL 190
#define GAP 40
#define BAND 12

typedef struct svg {
	FILE *f;
	double t_max;
	double y_max;
} svg;

static double sx(const svg *g, double t)
{
	if (t < 0)
		t = 0;
	if (t > g->t_max)
		t = g->t_max;
	return LEFT + (W - LEFT - RIGHT) * t / g->t_max;
}

static void text_escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

static long at(json_t *arr, size_t i)
{
	return (long)json_integer_value(json_array_get(arr, i));
}

/* The accepted-writes band of region `name` in the panel starting at y. */
static void draw_band(const svg *g, const drill_run_state *s, const char *name, int y)
{
	FILE *f = g->f;
	int drawn = 0;
	for (size_t i = 0; i < s->nintervals; i++) {
		const primary_interval *iv = &s->intervals[i];
		if (strcmp(iv->region, name) != 0)
			continue;
		double x0 = sx(g, run_t(s, iv->from_ms)), x1 = sx(g, run_t(s, iv->to_ms));
		fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#2e7d32\" opacity=\"0.85\">"
			   "<title>%s accepts writes, epoch %lld</title></rect>\n",
			x0, y, x1 - x0 > 1 ? x1 - x0 : 1, BAND, name, (long long)iv->epoch);
		fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"9\" fill=\"#fff\">e%lld</text>\n", x0 + 2,
			y + 9, (long long)iv->epoch);
		drawn = 1;
	}
	if (drawn)
		return;
	/* no log evidence: the roles seen by the status polls */
	double from = 0;
	int primary = 0;
	char prefix[48];
	snprintf(prefix, sizeof prefix, "%s: primary", name);
	for (size_t i = 0; i <= s->nevents; i++) {
		int end = i == s->nevents;
		const drill_event *e = end ? NULL : &s->events[i];
		if (!end && (strcmp(e->kind, "role") != 0 || strcmp(e->component, name) != 0))
			continue;
		double t = end ? g->t_max : run_t(s, e->t_ms);
		if (primary && t > from)
			fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#2e7d32\" "
				   "opacity=\"0.45\"><title>%s primary (status polls)</title></rect>\n",
				sx(g, from), y, sx(g, t) - sx(g, from), BAND, name);
		if (!end) {
			primary = strncmp(e->text, prefix, strlen(prefix)) == 0;
			from = t;
		}
	}
}

static void vline(const svg *g, double t, int y0, int y1, const char *color, const char *dash,
		  const char *label, int label_y)
{
	double x = sx(g, t);
	fprintf(g->f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" stroke-width=\"1.5\"%s%s%s/>\n",
		x, y0, x, y1, color, dash ? " stroke-dasharray=\"" : "", dash ? dash : "", dash ? "\"" : "");
	if (label) {
		int right = x > W - RIGHT - 120; /* near the right edge: the label goes left */
		fprintf(g->f, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" fill=\"%s\"%s>", right ? x - 3 : x + 3,
			label_y, color, right ? " text-anchor=\"end\"" : "");
		text_escaped(g->f, label);
		fputs("</text>\n", g->f);
	}
}

int timeline_write_svg(const drill_run_state *s, const char *path)
{
	json_t *r = s->report;
	json_t *series = json_object_get(r, "per_second");
	svg g = {.f = fopen(path, "w")};
	if (!g.f)
		return -1;
	FILE *f = g.f;
	size_t seconds = 1;
	const char *name;
	json_t *reg;
	json_object_foreach(series, name, reg) {
		json_t *ok = json_object_get(reg, "writes_ok"), *bad = json_object_get(reg, "write_errors"),
		       *rd = json_object_get(reg, "reads_ok"), *rde = json_object_get(reg, "read_errors");
		if (json_array_size(ok) > seconds)
			seconds = json_array_size(ok);
		for (size_t i = 0; i < json_array_size(ok); i++) {
			long m = at(ok, i);
			if (at(bad, i) > m)
				m = at(bad, i);
			if (at(rd, i) + at(rde, i) > m)
				m = at(rd, i) + at(rde, i);
			if (m > g.y_max)
				g.y_max = (double)m;
		}
	}
	g.t_max = (double)seconds;
	if (g.y_max < 1)
		g.y_max = 1;
	int nregions = (int)json_object_size(series);
	int height = TOP + nregions * (PANEL + GAP) + 70;

	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
		   "font-family=\"sans-serif\">\n",
		W, height, W, height);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n");
	fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\">tandem drill: ", LEFT);
	text_escaped(f, json_string_value(json_object_get(r, "scenario")));
	fprintf(f, " - %s</text>\n", json_is_true(json_object_get(r, "ok")) ? "PASS" : "FAIL");
	fprintf(f, "<text x=\"%d\" y=\"42\" font-size=\"11\" fill=\"#555\">", LEFT);
	json_t *wl = json_object_get(r, "workload");
	fprintf(f, "%lld writes/s, %lld%% global; partitions: ", (long long)json_integer_value(json_object_get(wl, "rate")),
		(long long)json_integer_value(json_object_get(wl, "global_percent")));
	text_escaped(f, json_string_value(json_object_get(json_object_get(r, "deployment"), "partition_method")));
	fputs("; per second: acknowledged writes (green), failed write attempts (red), reads served (blue), failed reads (orange)</text>\n", f);

	int y = TOP;
	json_object_foreach(series, name, reg) {
		int base = y + PANEL;
		int top = y + BAND + 6;
		double scale = (double)(base - top) / g.y_max;
		fprintf(f, "<text x=\"8\" y=\"%d\" font-size=\"14\" font-weight=\"bold\">", y + PANEL / 2);
		text_escaped(f, name);
		fputs("</text>\n", f);
		fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#f4f4f4\"/>\n", LEFT, y,
			W - LEFT - RIGHT, BAND);
		draw_band(&g, s, name, y);
		/* axes */
		fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\"/>\n", LEFT, base, W - RIGHT, base);
		fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\"/>\n", LEFT, top, LEFT, base);
		fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"9\" text-anchor=\"end\">%.0f/s</text>\n", LEFT - 4,
			top + 8, g.y_max);
		fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"9\" text-anchor=\"end\">0</text>\n", LEFT - 4, base);
		json_t *ok = json_object_get(reg, "writes_ok"), *bad = json_object_get(reg, "write_errors"),
		       *rd = json_object_get(reg, "reads_ok"), *rde = json_object_get(reg, "read_errors");
		double bw = (sx(&g, 1) - sx(&g, 0)) * 0.8;
		for (size_t i = 0; i < json_array_size(ok); i++) {
			long v = at(ok, i), e = at(bad, i);
			double x = sx(&g, (double)i) + bw * 0.1;
			if (v > 0)
				fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#66bb6a\">"
					   "<title>%zu s: %ld writes acknowledged</title></rect>\n",
					x, base - v * scale, bw, v * scale, i, v);
			if (e > 0) {
				double h = e * scale < 3 ? 3 : e * scale;
				fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#e53935\" "
					   "opacity=\"0.85\"><title>%zu s: %ld failed write attempts</title></rect>\n",
					x + bw * 0.25, base - h, bw * 0.5, h, i, e);
			}
			long re = at(rde, i);
			if (re > 0)
				fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#fb8c00\" "
					   "stroke-width=\"3\"><title>%zu s: %ld failed reads</title></line>\n",
					x + bw / 2, base + 2, x + bw / 2, base + 9, i, re);
		}
		fprintf(f, "<polyline fill=\"none\" stroke=\"#1e88e5\" stroke-width=\"1.5\" points=\"");
		for (size_t i = 0; i < json_array_size(rd); i++)
			fprintf(f, "%.1f,%.1f ", sx(&g, (double)i + 0.5), base - at(rd, i) * scale);
		fputs("\"/>\n", f);
		y += PANEL + GAP;
	}
	int bottom = y - GAP;
	/* x axis ticks */
	int step = g.t_max > 120 ? 30 : g.t_max > 40 ? 10 : g.t_max > 15 ? 5 : 1;
	for (int t = 0; t <= (int)g.t_max; t += step)
		fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%d s</text>\n",
			sx(&g, t), bottom + 22, t);
	/* events across the panels */
	int label_row = 0;
	for (size_t i = 0; i < s->nevents; i++) {
		const drill_event *e = &s->events[i];
		double t = run_t(s, e->t_ms);
		if (e->t_ms < s->t0_ms)
			continue;
		char label[64];
		const char *color = NULL, *dash = NULL;
		if (strcmp(e->kind, "fault") == 0) {
			color = "#c62828";
			dash = "6,3";
			snprintf(label, sizeof label, "fault: %s", e->component);
		} else if (strcmp(e->kind, "heal") == 0) {
			color = "#2e7d32";
			dash = "6,3";
			snprintf(label, sizeof label, "heal");
		} else if (strcmp(e->kind, "kill") == 0 || strcmp(e->kind, "start") == 0 ||
			   strcmp(e->kind, "stop") == 0 || strcmp(e->kind, "switchover") == 0) {
			color = "#6d4c41";
			dash = "2,2";
			snprintf(label, sizeof label, "%s %s", e->kind, e->component);
		} else {
			continue;
		}
		vline(&g, t, TOP - 40, bottom, color, dash, label, TOP - 32 + 11 * (label_row++ % 3));
	}
	/* role changes from the logs */
	size_t i;
	json_t *ev;
	json_array_foreach(json_object_get(r, "role_events"), i, ev) {
		const char *kind = json_string_value(json_object_get(ev, "event"));
		const char *region = json_string_value(json_object_get(ev, "region"));
		const char *role = json_string_value(json_object_get(ev, "role"));
		char label[64];
		if (kind && strcmp(kind, "quarantine") == 0)
			snprintf(label, sizeof label, "%s quarantined %lld", region ? region : "?",
				 (long long)json_integer_value(json_object_get(ev, "count")));
		else
			snprintf(label, sizeof label, "%s %s e%lld", region ? region : "?", role ? role : "?",
				 (long long)json_integer_value(json_object_get(ev, "epoch")));
		vline(&g, json_number_value(json_object_get(ev, "t_s")), TOP, bottom, "#6a1b9a", "1,3", label,
		      bottom + 36 + 10 * (int)(i % 2));
	}
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" fill=\"#555\">band: the region accepts writes "
		   "(dark: writes_on/off from its log, light: status polls); dashed: fault (red), heal (green), "
		   "processes (brown), roles (purple)</text>\n",
		LEFT, height - 8);
	fputs("</svg>\n", f);
	int rc = ferror(f) ? -1 : 0;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}
