/*
 * health.h - health checks of the regions, run inside each `tandem dns`
 * instance (issue 11 section 2), and what the answer path reads of them.
 *
 * Every `interval` (health_interval_ms, 1 s), one HTTPS GET /readyz to
 * each region's api_listen, verified against the deployment's CA with the
 * region's name as SNI (its certificate names it). A check passes when the
 * answer is 200 within health_timeout_ms and, when health_max_rtt_ms is
 * set, its round-trip time is within it. Per region, a state machine on
 * the results (dns_health_observe, time injected):
 *
 *            `failures` failed checks in a row
 *   HEALTHY  --------------------------------->  UNHEALTHY
 *            <---------------------------------
 *            `recoveries` passed checks in a row
 *
 * A region starts HEALTHY (a DNS instance starting beside a dead region
 * answers it until `failures` checks have failed, as Route 53's new checks
 * do). The answers change at the transition itself: the checker publishes
 * a new dns_health_view (route.h: healthy mask, primary mask) with one
 * atomic store, and every answer after it reads the new one (one atomic
 * load per answer, no lock). The primary is the healthy region whose
 * /readyz says role "primary" with the highest epoch (two may say it for a
 * moment during a switchover: the newer epoch wins).
 *
 * The checker has its own thread and event loop; so has the optional
 * metrics listener ([dns NAME] metrics_listen, plain HTTP, loopback):
 * GET /metrics (Prometheus text) and GET /health (JSON, what `tandem
 * status` shows), served on the checker's loop so they read its state
 * without a lock. Transitions are logged (events dns_region_unhealthy,
 * dns_region_healthy, dns_fail_open).
 */
#ifndef TANDEM_DNS_HEALTH_H
#define TANDEM_DNS_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "dns/dnsconf.h"
#include "dns/route.h"

/* --- the state machine of one region (pure: time is given) --- */

typedef struct dns_health_params {
	int failures;     /* failed checks in a row that make a region unhealthy (>= 1) */
	int recoveries;   /* passed checks in a row that make it healthy again (>= 1) */
} dns_health_params;

typedef struct dns_health_state {
	bool healthy;
	int streak;       /* results in a row against the current state */
	int64_t since_ms; /* when the current state began */
	uint64_t checks, failed, transitions;
} dns_health_state;

/* A region not checked yet: healthy since now_ms. */
void dns_health_state_init(dns_health_state *s, int64_t now_ms);
/* Count one check's result at now_ms. Returns true when the state changed
 * (s->healthy is the new one). Cannot fail. */
bool dns_health_observe(dns_health_state *s, const dns_health_params *p, bool ok, int64_t now_ms);

/* The view the answers read, from n regions' states and what their
 * /readyz said (is_primary[i], epoch[i]; a region never answered: false,
 * 0). Cannot fail. */
dns_health_view dns_health_make_view(const dns_health_state *s, const bool *is_primary, const uint64_t *epoch,
				     int n);

/* --- the checker --- */

typedef struct dns_health dns_health;

/* A checker of every region dc names (dc->regions), with the addresses
 * and CA of cfg, and the metrics listener of sc bound (before privileges
 * are dropped). NULL with the reason in err (a region without api_listen,
 * the CA unreadable, the metrics address taken). */
dns_health *dns_health_new(const config *cfg, const dns_conf *dc, const dns_server_conf *sc, char *err,
			   size_t errcap);
/* Start its thread. 0, or ERR_IO (no thread: the checker is not running
 * and every region stays healthy). */
int dns_health_start(dns_health *h);
/* The current view; any thread, no lock. NULL h: every region healthy. */
dns_health_view dns_health_current(const dns_health *h);
/* Stop the thread, close everything. No-op on NULL; resets *h. */
void dns_health_free(dns_health **h);

#endif
