/*
 * region.h - the region node: the mobile API of one region.
 *
 * A region process owns: an HTTPS server (http/server.h), a read-only
 * database connection on the event loop thread (reads never wait behind
 * writes: WAL), the group-commit writer thread (store/committer.h), and a
 * small pool hashing passwords. Everything it knows about the deployment
 * comes from the one config file and the secrets file.
 */
#ifndef TANDEM_REGION_H
#define TANDEM_REGION_H

#include "core/config.h"

/* Run the region named name until SIGTERM/SIGINT. ready_fd >= 0: write
 * "ready\n" to it once serving (used by `tandem up`). Returns a process exit
 * code; on failure the reason was printed as one line on stderr. */
int region_main(const config *cfg, const char *name, int ready_fd);

#endif
