/*
 * failover.pml - SPIN model of tandem's failover protocol (docs/FAILOVER.md).
 * Checked exhaustively by model/check.sh (`make model-check`).
 *
 * Three voters: the regions EU (0) and US (1), which hold data and can be
 * primary, and the witness W (2), which holds no data.
 *
 * PROPERTIES, checked in every reachable state by the monitor process, and
 * by assertions at the steps where they could first break:
 *   P1  never two regions accepting writes at the same time:
 *         [] !(accepting(EU) && accepting(US))
 *   P2  no write acknowledged with `global` durability is ever lost: every
 *       region that is primary holds every global-acked entry; a position is
 *       never global-acked for two different writes; a rejoining region never
 *       quarantines (reverts) a global-acked entry
 *   P3  log matching: if both regions hold the entry (epoch e, position k),
 *       they hold the same entries at every position below k (no silent
 *       divergence after a rejoin)
 *
 * ABSTRACTIONS, and why they are sound for these (safety) properties
 *
 * Writes and logs. A write is one log entry, named by its position k and the
 * epoch e of the primary that wrote it (one primary per epoch, which never
 * writes twice at a position), so a log is an array of epoch tags:
 * lg[r].e[k] = e, 0 = no entry; position 0 is the empty prefix. Positions are
 * bounded by MAXPOS, epochs by MAXEP.
 *
 * Time and clock drift. Global time advances by ticks (process clock); any
 * number of protocol steps, in any order, happen between two ticks. Only two
 * timers matter for safety, and each is modelled by its remaining REAL time,
 * decremented at every tick:
 *   - a voter's grant: the voter counts it for lease_duration + grant_margin
 *     on its own clock, which with a rate error of at most rho lasts at least
 *     GRANT_LO real ticks from the moment of the grant;
 *   - the primary's lease from one request: lease_duration * (1 - rho) -
 *     lease_margin on the primary's clock FROM THE SEND of the request, which
 *     lasts at most LEASE_HI real ticks. The request carries that remaining
 *     time and the grant echoes it back (the real messages carry t_send), and
 *     the clock ages messages in flight, so however long the request and the
 *     reply take, the lease never outlives "send + LEASE_HI".
 * A timer's length is chosen in [LO, HI] when it starts. By default the range
 * is the worst case alone (grants as short, leases as long as the drift
 * allows): a longer grant only makes a voter refuse more, which message loss
 * already covers, and a shorter lease only takes away chances to write;
 * -DWIDE explores ranges. The proof needs exactly one timing fact,
 * LEASE_HI <= GRANT_LO (the drift margin). At equality both expire at the
 * same tick; "accepting" and "the grant still binds" are both "remaining >
 * 0", so a voter sees a grant expired only once the lease relying on it has
 * expired too. -DBROKEN_MARGIN (LEASE_HI = GRANT_LO + 1) gives split brain.
 * Liveness timers (renew interval, election timeout) are not modelled: a
 * primary may renew, and a secondary may stand for election, at ANY moment,
 * which includes every timing the real timers allow.
 *
 * Network. Requests (LeaseRequest, Vote, replication frame, handover) travel
 * on one FIFO channel per ordered pair of processes, CAP messages each
 * (default 1). Every send may be lost (a partition is a run of losses; a
 * message to a crashed process is a loss), a request waits in its channel
 * for any number of steps and ticks (delay), and requests on different pairs
 * are received in any order. With CAP >= 2 the receiver may also rotate a
 * channel (reordering on one pair).
 * Replies (lease granted, vote granted, replication ack) are lost or take
 * effect at once, in the step that grants them, if the requester is still in
 * the state it asked from. A reply that arrives later has no more effect:
 * a late lease grant gives a lease that still ends at "send + LEASE_HI" (so
 * it is only shorter), a late vote or ack makes the same change later, and
 * the requester's steps in between either leave the reply without effect
 * (it stood again, stepped down, crashed: the same as a lost reply) or do
 * not depend on it. So delivering at once covers every delay of a reply, at
 * a fraction of the states. (-DBROKEN_TSEND, whose flaw needs a late reply,
 * keeps that reply pending.)
 *
 * Isolation gate. A primary takes a write only while it also heard from
 * another voter within the isolation bound (heard[x] > 0): a lease grant or
 * a replication ack that takes effect sets heard to ISO_TICKS (the bound is
 * below the lease's validity, so at most LEASE_HI), each tick ages it, an
 * election sets it (a majority just voted), a step-down or a crash clears
 * it. P1 is still checked on ACCEPTING (the lease alone): the gate only
 * takes writes away, so it cannot break P1-P3, and the runs show it;
 * -DBROKEN_ISOLATION lets recent contact stand in for the lease (a primary
 * that heard from the secondary keeps accepting after its lease ended) and
 * gives split brain.
 *
 * Crashes. A crash-restart (at most MAXCRASH, of any process) is one step:
 * volatile state is lost (the primary's lease, a candidacy), durable state
 * is kept (promised epoch, grant, role, epoch, log, synced epoch). Being down
 * for a while is not being scheduled while the messages sent to it are lost.
 * A restarted voter cannot trust its monotonic clock, so a recorded grant
 * counts again in full from the restart; -DBROKEN_RESTART (grant forgotten)
 * gives split brain.
 *
 * Cross-process reads standing for an exchange: the primary's stream sends
 * from the position the secondary asks for (its applied position + 1, or
 * its applied position again, which it acks again: a lost ack); a rejoining
 * region reads the new primary's log (the real protocol fetches the epoch
 * history, (epoch, start position) pairs, which give the epoch of every
 * position). A primary's log only grows while it is primary of that epoch,
 * so a snapshot of it is what any reply would carry.
 *
 * State-space reductions that change no behaviour: temporaries are hidden;
 * values that can no longer matter are reset (the epoch and lease of a
 * secondary, a candidacy once the promised epoch moved, an expired grant's
 * holder once no crash can bring it back).
 *
 * VARIANTS (model/check.sh runs each; FAILOVER.md gives the counterexamples).
 * Must violate P1:
 *   -DBROKEN_GRANT    voters ignore unexpired grants (for leases and votes)
 *   -DBROKEN_EXPIRY   the primary does not stop when its lease expires
 *   -DBROKEN_TSEND    the lease is counted from the reply, not the send
 *   -DBROKEN_MARGIN   no drift margin: LEASE_HI = GRANT_LO + 1
 *   -DBROKEN_SELF     a region's own vote and own lease grant skip the rule
 *                     (no unexpired grant to the other region)
 *   -DBROKEN_RESTART  a restarted voter forgets its grant's time
 *   -DBROKEN_ISOLATION recent contact with a voter stands in for the lease
 *   -DFORCE           operator --force (documented: a possible overlap)
 * Must violate P2:
 *   -DBROKEN_ACK      the secondary acks a frame before applying it durably
 * Must violate P3:
 *   -DBROKEN_REJOIN   divergence point = the new epoch's start S, and the
 *                     stream checks positions only (as the v1 stream does)
 * Must satisfy P1-P3 (rules found not to be needed for safety):
 *   -DNO_POSCHECK         no "candidate not behind" rule: with two
 *                         data-bearing voters, the global ack itself puts a
 *                         write on every possible future primary
 *   -DNO_VOTE_GRANT_CHECK votes ignore unexpired grants: the LEASE grant
 *                         rule alone excludes two leases; the vote rule
 *                         keeps a healthy primary from being deposed
 *   -DFORCE -DNO_P1       --force breaks P1 only, never P2 or P3
 */

#ifndef MAXEP
#define MAXEP     3   /* epochs 1..MAXEP: the initial one and two elections */
#endif
#ifndef MAXPOS
#define MAXPOS    2   /* log positions 1..MAXPOS */
#endif
#ifndef MAXCRASH
#define MAXCRASH  1   /* crash-restarts in all, of any process */
#endif
#ifndef MAXHO
#define MAXHO     1   /* step-downs: planned switchovers or silent ones */
#endif
#ifndef CAP
#define CAP       1   /* messages in flight on one ordered pair */
#endif

/* Real-time bounds of the two safety timers, in ticks. GRANT_LO: shortest
 * real time a grant binds; LEASE_HI: longest real time a lease lasts from
 * its request's send. With the defaults of FAILOVER.md (lease 4 s, margins
 * 0.2 s, rho = 1%) these are 4.158 s and 3.798 s. The proof needs only
 * LEASE_HI <= GRANT_LO, and any number of steps fit between two ticks, so
 * TICKS only sets how finely time is cut (how many ticks a lease spans). */
#ifndef TICKS
#define TICKS     1
#endif
#ifdef WIDE
#define GRANT_LO  TICKS
#define GRANT_HI  (TICKS + 1)
#define LEASE_LO  0
#define LEASE_HI  TICKS
#else
#define GRANT_LO  TICKS
#define GRANT_HI  TICKS
#define LEASE_LO  TICKS
#define LEASE_HI  TICKS
#endif
/* the isolation bound, in ticks (below the lease's validity) */
#ifndef ISO_TICKS
#define ISO_TICKS LEASE_HI
#endif
#ifdef BROKEN_MARGIN
#undef  LEASE_LO
#undef  LEASE_HI
#define LEASE_LO  (GRANT_LO + 1)
#define LEASE_HI  (GRANT_LO + 1)
#endif

#define EU   0
#define US   1
#define W    2
#define NONE 3

#define SECONDARY 0
#define PRIMARY   1

/* requests: type, epoch, a, b, c (the sender is the channel's). Replies
 * (lease granted, vote granted, replication ack) take effect at once or are
 * lost: see "Replies" in the header. */
#define LREQ   1   /* LeaseRequest(E): a = remaining lease from the send        */
#define VREQ   3   /* Vote(E'): a = epoch of last entry, b = last position,
                      c = force                                               */
#define FRAME  5   /* entry (E): a = position, b = its epoch, c = epoch of the
                      entry before it                                          */
#define HOVER  7   /* planned switchover: the old primary of E hands over       */

/* the four channels that carry requests: EU->US, US->EU, EU->W, US->W */
#define CH(from, to) ((to) == W -> 2 + (from) : (from))
chan net[4] = [CAP] of { byte, byte, byte, byte, byte };

typedef Log { byte e[MAXPOS + 1] };

/* regions (index W unused) */
byte role[3];      /* durable */
byte epoch[3];     /* durable: the epoch it is primary of (0: secondary) */
byte lease[3];     /* volatile: remaining real time of the primary's lease */
byte pos[3];       /* durable: last applied (or written) position */
byte start[3];     /* durable: S, where its epoch starts (BROKEN_REJOIN only) */
byte synced[3];    /* durable: the epoch whose primary's log its log agrees with */
byte cand[3];      /* volatile: epoch it stands for, 0 = none */
byte heard[3];     /* volatile: remaining real time of the primary's isolation window */
Log  lg[3];        /* durable */

/* voters (all three) */
byte promised[3];  /* durable */
byte gholder[3];   /* durable: holder of the current grant, or NONE */
byte grem[3];      /* remaining real time the grant binds */

#ifdef BROKEN_TSEND
byte late[3];      /* a lease reply on its way (only BROKEN_TSEND delays replies) */
#define CLEAR_LATE(v) late[v] = 0
#else
#define CLEAR_LATE(v) skip
#endif

/* ghost state */
byte gack[MAXPOS + 1];  /* epoch of the write global-acked at each position */
byte crashes;
byte handovers;

/* Narration for counterexamples: printf runs only when SPIN replays a trail
 * (spin -t), never during the search. */
inline pname(x) {
	if
	:: x == EU -> printf("EU")
	:: x == US -> printf("US")
	:: else -> printf("W")
	fi
}
#define SAY(x) printf("  "); pname(x); printf

/* Temporaries, hidden (not part of the state): each use is inside one
 * atomic step, which zeroes them at its end. */
hidden byte m_t, m_e, m_f, m_a, m_b, m_c, x_r, x_g, x_k, x_d, x_n, x_o, x_force;

#ifdef BROKEN_EXPIRY
#define LEASE_END_TEXT " lease expires, but it goes on accepting writes\n"
#else
#define LEASE_END_TEXT " lease expires: stops accepting writes\n"
#endif

#ifdef BROKEN_ISOLATION
#define ACCEPTING(x) (role[x] == PRIMARY && (lease[x] > 0 || heard[x] > 0))
#else
#define ACCEPTING(x) (role[x] == PRIMARY && lease[x] > 0)
#endif
/* the isolation gate: writes only while another voter was heard from lately */
#define HEARD(x)     (heard[x] > 0)
/* voter v has no grant that stops it granting to h */
#define FREE(v, h)   (gholder[v] == NONE || gholder[v] == h || grem[v] == 0)
/* epoch of region x's last entry */
#define LASTTAG(x)   lg[x].e[pos[x]]

/* The rules that the variants break or drop. (m_f: the requester; m_a, m_b:
 * a candidate's last entry epoch and position; m_c: force, or the epoch of
 * the entry before a frame's.) */
#if defined(BROKEN_GRANT) || defined(BROKEN_SELF)
#define SELF_GRANT_OK(v)  true           /* the primary counts itself blindly */
#else
#define SELF_GRANT_OK(v)  FREE(v, v)     /* its own voter's rule, like any voter */
#endif
#ifdef BROKEN_GRANT
#define LEASE_GRANT_OK(v) true
#else
#define LEASE_GRANT_OK(v) FREE(v, m_f)
#endif
#if defined(BROKEN_GRANT) || defined(NO_VOTE_GRANT_CHECK)
#define VOTE_GRANT_OK(v)  true
#else
#define VOTE_GRANT_OK(v)  (FREE(v, m_f) || m_c)   /* m_c: operator --force */
#endif
#if defined(BROKEN_GRANT) || defined(BROKEN_SELF) || defined(NO_VOTE_GRANT_CHECK)
#define SELF_VOTE_OK(v)   true
#else
#define SELF_VOTE_OK(v)   FREE(v, v)
#endif
#ifdef NO_POSCHECK
#define VOTE_POS_OK(v)    true
#else
/* the candidate is not behind: (last epoch, last position) >= the voter's;
 * the witness has no data */
#define VOTE_POS_OK(v)    (v == W || m_a > LASTTAG(v) || (m_a == LASTTAG(v) && m_b >= pos[v]))
#endif
#ifdef BROKEN_REJOIN
#define PREV_OK(v)        true                        /* seq only */
#define HAVE_OK(v)        true
#else
#define PREV_OK(v)        (lg[v].e[m_a - 1] == m_c)   /* entry before matches */
#define HAVE_OK(v)        (lg[v].e[m_a] == m_b)
#endif
#ifdef BROKEN_HANDOVER
#define HOVER_EPOCH_OK(v) true                          /* any time */
#else
#define HOVER_EPOCH_OK(v) (promised[v] <= m_e)          /* no newer epoch known */
#endif

/* me sends to `to`; the message may be lost (always, if there is no room) */
inline send(to, mt, fa, fb, fc) {
	if
	:: len(net[CH(me, to)]) < CAP -> net[CH(me, to)]!mt, m_e, fa, fb, fc
	:: skip
	fi
}

/* v learns of epoch m_e (established: it comes from its primary, or v just
 * voted for it); a region that is primary of a lower epoch steps down */
inline learn(v) {
	if
	:: m_e > promised[v] -> promised[v] = m_e; cand[v] = 0
	:: else -> skip
	fi;
	if
	:: v != W && role[v] == PRIMARY && promised[v] > epoch[v] ->
		SAY(v)(" steps down: epoch %d exists\n", promised[v]);
		role[v] = SECONDARY; lease[v] = 0; epoch[v] = 0; heard[v] = 0; CLEAR_LATE(v)
	:: else -> skip
	fi
}

/* v grants (or renews) to holder h in epoch m_e, durably */
inline grant(v, h) {
	if
	:: gholder[v] != h -> grem[v] = 0
	:: else -> skip
	fi;
	gholder[v] = h;
	select(x_g : GRANT_LO .. GRANT_HI);
	if
	:: x_g > grem[v] -> grem[v] = x_g   /* granted_until never moves back */
	:: else -> skip
	fi;
	x_g = 0
}

/* a restarted voter counts a recorded grant again, in full */
inline restart_voter(v) {
	if
	:: gholder[v] != NONE ->
#ifdef BROKEN_RESTART
		grem[v] = 0
#else
		select(x_g : GRANT_LO .. GRANT_HI); grem[v] = x_g; x_g = 0
#endif
	:: else -> skip
	fi
}

/* Replies to m_f. Each is lost, or takes effect at once if m_f is still in
 * the state the request was sent from. */

/* lease granted: the lease runs from the request's send (m_a is what is left
 * of it). (The real primary ignores replies to requests it sent before a
 * restart, whose t_send it cannot read; the model even uses them: more
 * behaviours, not fewer.) */
inline lease_reply() {
	if
	:: role[m_f] == PRIMARY && epoch[m_f] == m_e && promised[m_f] == m_e ->
		if
		:: skip
#ifdef BROKEN_TSEND
		:: late[m_f] = 1            /* the reply is on its way; see region() */
#else
		:: m_a > lease[m_f] -> lease[m_f] = m_a; heard[m_f] = ISO_TICKS;
		   SAY(m_f)(" holds a lease in epoch %d (%d tick(s) left) thanks to ", m_e, lease[m_f]); pname(me); printf("\n")
		:: m_a <= lease[m_f] -> heard[m_f] = ISO_TICKS   /* no longer lease, but contact */
#endif
		fi
	:: else -> skip
	fi
}

/* vote granted: with its own vote, a majority: primary of E', which starts
 * at S = its position; it accepts writes only once it holds a lease */
inline vote_reply() {
	if
	:: cand[m_f] == m_e && promised[m_f] == m_e && role[m_f] == SECONDARY ->
		if
		:: skip
		:: SAY(m_f)(" is elected primary of epoch %d, with its own vote and that of", m_e); pname(me); printf("\n");
		   role[m_f] = PRIMARY; epoch[m_f] = m_e; synced[m_f] = m_e;
#ifdef BROKEN_REJOIN
		   start[m_f] = pos[m_f];
#endif
		   lease[m_f] = 0; cand[m_f] = 0; heard[m_f] = ISO_TICKS
		fi
	:: else -> skip
	fi
}

/* replication ack of position m_a (epoch m_b), cumulative: the primary
 * counts every write up to m_a as global-acked */
inline ack_reply() {
	if
	:: role[m_f] == PRIMARY && epoch[m_f] == m_e && promised[m_f] == m_e &&
	   m_a <= pos[m_f] && lg[m_f].e[m_a] == m_b ->
		if
		:: skip
		:: x_k = 1;
		   do
		   :: x_k <= m_a ->
			assert(gack[x_k] == 0 || gack[x_k] == lg[m_f].e[x_k]);  /* P2 */
			gack[x_k] = lg[m_f].e[x_k];
			x_k++
		   :: else -> break
		   od;
		   x_k = 0; heard[m_f] = ISO_TICKS;
		   SAY(m_f)(" acknowledges writes up to position %d as global (acked by", m_a); pname(me); printf(")\n")
		fi
	:: else -> skip
	fi
}

/* voter me answers a LeaseRequest or a Vote from m_f */
inline voter() {
	if
	:: m_t == LREQ ->
		if
		:: m_e >= promised[me] ->
			learn(me);
			if
			:: LEASE_GRANT_OK(me) ->
				grant(me, m_f);
				SAY(me)(" grants a lease to "); pname(m_f); printf(" (epoch %d)\n", m_e);
				lease_reply()
			:: else -> skip          /* unexpired grant to another holder */
			fi
		:: else -> skip              /* lower epoch: refused */
		fi
	:: m_t == VREQ ->
		if
		:: m_e > promised[me] && VOTE_GRANT_OK(me) && VOTE_POS_OK(me) ->
			learn(me);               /* promised = E', durably */
			if
			:: m_c && gholder[me] != NONE && gholder[me] != m_f ->
				/* --force: the unexpired grant is disregarded, i.e. dropped */
				SAY(me)(" drops its grant to "); pname(gholder[me]); printf(" (--force)\n");
				gholder[me] = NONE; grem[me] = 0
			:: else -> skip
			fi;
			SAY(me)(" votes for "); pname(m_f); printf(" in epoch %d\n", m_e);
			vote_reply()
		:: else -> skip
		fi
	:: else -> skip
	fi
}

/* region me handles the message in m_t.. from m_f */
inline region_receive() {
	if
	:: m_t == LREQ || m_t == VREQ -> voter()
	:: m_t == FRAME ->
		if
		:: m_e >= promised[me] ->
			learn(me);
			if
			:: role[me] == SECONDARY && synced[me] == m_e && m_a == pos[me] + 1 && PREV_OK(me) ->
#ifdef BROKEN_ACK
				ack_reply();                     /* acked before the apply is durable */
				if
				:: lg[me].e[m_a] = m_b; pos[me] = m_a
				:: SAY(me)(" acked position %d but crashed before applying it\n", m_a)
				fi
#else
				lg[me].e[m_a] = m_b; pos[me] = m_a;   /* entry and applied position: one transaction */
				SAY(me)(" applies position %d (epoch %d)\n", m_a, m_b);
				ack_reply()
#endif
			:: role[me] == SECONDARY && synced[me] == m_e && m_a <= pos[me] && HAVE_OK(me) ->
				ack_reply()                      /* already applied: ack again */
			:: else -> skip
			fi
		:: else -> skip                          /* lower epoch: refused */
		fi
	:: m_t == HOVER ->
		/* the old primary of m_e stopped writing for good in m_e and dropped
		 * its lease, so a grant to it made in m_e or earlier protects
		 * nothing any more; a grant to it in a newer epoch (this voter then
		 * knows that epoch) must stay */
		if
		:: gholder[me] == m_f && HOVER_EPOCH_OK(me) ->
			SAY(me)(" releases its grant to "); pname(m_f); printf(" (handover from epoch %d)\n", m_e);
			gholder[me] = NONE; grem[me] = 0
		:: else -> skip
		fi
	:: else -> skip
	fi
}

#define CLEAR m_t = 0; m_e = 0; m_f = 0; m_a = 0; m_b = 0; m_c = 0

proctype region(byte me)
{
	do
	/* a write, only while the lease is valid and another voter was heard
	 * from within the isolation bound */
	:: atomic { ACCEPTING(me) && HEARD(me) && pos[me] < MAXPOS ->
		pos[me]++; lg[me].e[pos[me]] = epoch[me];
		SAY(me)(" accepts a write: position %d (epoch %d)\n", pos[me], epoch[me])
	   }

#ifdef BROKEN_TSEND
	/* a lease reply arrives late, and the lease is counted from its arrival
	 * (wrong: it must be counted from the request's send) */
	:: atomic { late[me] && role[me] == PRIMARY ->
		late[me] = 0; lease[me] = LEASE_HI;
		SAY(me)(" receives a late lease reply and counts the lease from now\n")
	   }
#endif

	/* renew the lease: own grant (durable) first, then the requests */
	:: atomic { role[me] == PRIMARY && promised[me] == epoch[me] && SELF_GRANT_OK(me) ->
		m_e = epoch[me]; grant(me, me);
		select(x_r : LEASE_LO .. LEASE_HI);
		send(1 - me, LREQ, x_r, 0, 0);
		send(W, LREQ, x_r, 0, 0);
		m_e = 0; x_r = 0
	   }

	/* replication stream: from the position the secondary asks for */
	:: atomic { role[me] == PRIMARY && pos[me] > 0 && pos[1 - me] <= pos[me] ->
		if
		:: pos[1 - me] < pos[me] -> x_k = pos[1 - me] + 1
		:: pos[1 - me] == pos[me] -> x_k = pos[me]    /* again: a lost ack */
		fi;
		m_e = epoch[me];
		send(1 - me, FRAME, x_k, lg[me].e[x_k], lg[me].e[x_k - 1]);
		m_e = 0; x_k = 0
	   }

	/* stand for election, for any higher epoch, at any moment */
	:: atomic { role[me] == SECONDARY && promised[me] < MAXEP ->
		select(m_e : promised[me] + 1 .. MAXEP);
#ifdef FORCE
		if :: x_force = 0 :: x_force = 1 fi;
#endif
		if
		:: x_force || SELF_VOTE_OK(me) ->
			promised[me] = m_e; cand[me] = m_e;     /* own vote, durable */
			if
			:: x_force && gholder[me] != NONE && gholder[me] != me ->
				gholder[me] = NONE; grem[me] = 0    /* --force drops it here too */
			:: else -> skip
			fi;
			SAY(me)(" stands for epoch %d at (epoch %d, position %d)", m_e, LASTTAG(me), pos[me]);
			if :: x_force -> printf(", --force\n") :: else -> printf("\n") fi;
			send(1 - me, VREQ, LASTTAG(me), pos[me], x_force);
			send(W, VREQ, LASTTAG(me), pos[me], x_force)
		:: else -> skip
		fi;
		m_e = 0; x_force = 0
	   }

	/* rejoin: having learned a newer epoch, find the divergence point D with
	 * its primary, quarantine and revert the entries above D (newest first),
	 * then follow from D + 1 */
	:: atomic { role[me] == SECONDARY && synced[me] < promised[me] &&
	            role[1 - me] == PRIMARY && epoch[1 - me] == promised[me] ->
		x_o = 1 - me;
#ifdef BROKEN_REJOIN
		x_d = (start[x_o] < pos[me] -> start[x_o] : pos[me]);
#else
		x_d = 0;
		do
		:: x_d < pos[me] && x_d < pos[x_o] && lg[me].e[x_d + 1] == lg[x_o].e[x_d + 1] -> x_d++
		:: else -> break
		od;
#endif
		if
		:: pos[me] > x_d -> SAY(me)(" rejoins epoch %d: divergence point %d, quarantines and reverts positions %d..%d\n", promised[me], x_d, x_d + 1, pos[me])
		:: else -> SAY(me)(" rejoins epoch %d at position %d (nothing to quarantine)\n", promised[me], x_d)
		fi;
		do
		:: pos[me] > x_d ->
			assert(gack[pos[me]] != lg[me].e[pos[me]]);  /* P2: never quarantine a global-acked write */
			lg[me].e[pos[me]] = 0; pos[me]--
		:: else -> break
		od;
		synced[me] = promised[me];
		x_o = 0; x_d = 0
	   }

	/* step down (at most MAXHO times in all): either a planned switchover
	 * (stop writes, give up the own grant, hand over to the other region),
	 * or a silent step-down, standing for every other reason a primary
	 * stops (an operator, a refusal that told it of a newer epoch) */
	:: atomic { role[me] == PRIMARY && promised[me] == epoch[me] && handovers < MAXHO ->
		handovers++;
		m_e = epoch[me];
		role[me] = SECONDARY; lease[me] = 0; epoch[me] = 0; heard[me] = 0; CLEAR_LATE(me);
		if
		:: SAY(me)(" stops writes and hands over (epoch %d)\n", m_e);
		   if
		   :: gholder[me] == me -> gholder[me] = NONE; grem[me] = 0
		   :: else -> skip
		   fi;
		   send(1 - me, HOVER, 0, 0, 0)
		:: SAY(me)(" steps down (epoch %d)\n", m_e)
		fi;
		m_e = 0
	   }

	/* crash and restart */
	:: atomic { crashes < MAXCRASH ->
		crashes++; lease[me] = 0; cand[me] = 0; heard[me] = 0; CLEAR_LATE(me);
		SAY(me)(" crashes and restarts\n");
		restart_voter(me)
	   }

	/* receive */
	:: atomic { nempty(net[CH(1 - me, me)]) ->
		net[CH(1 - me, me)]?m_t, m_e, m_a, m_b, m_c; m_f = 1 - me;
		region_receive(); CLEAR
	   }
#if CAP > 1
	/* reordering on one pair */
	:: atomic { len(net[CH(1 - me, me)]) > 1 ->
		net[CH(1 - me, me)]?m_t, m_e, m_a, m_b, m_c; net[CH(1 - me, me)]!m_t, m_e, m_a, m_b, m_c; CLEAR
	   }
#endif
	od
}

proctype witness(byte me)
{
	do
	:: atomic { crashes < MAXCRASH ->
		crashes++; restart_voter(me);
		SAY(me)(" crashes and restarts\n")
	   }
	:: atomic { nempty(net[CH(EU, W)]) ->
		net[CH(EU, W)]?m_t, m_e, m_a, m_b, m_c; m_f = EU;
		voter(); CLEAR
	   }
	:: atomic { nempty(net[CH(US, W)]) ->
		net[CH(US, W)]?m_t, m_e, m_a, m_b, m_c; m_f = US;
		voter(); CLEAR
	   }
#if CAP > 1
	:: atomic { len(net[CH(EU, W)]) > 1 ->
		net[CH(EU, W)]?m_t, m_e, m_a, m_b, m_c; net[CH(EU, W)]!m_t, m_e, m_a, m_b, m_c; CLEAR
	   }
	:: atomic { len(net[CH(US, W)]) > 1 ->
		net[CH(US, W)]?m_t, m_e, m_a, m_b, m_c; net[CH(US, W)]!m_t, m_e, m_a, m_b, m_c; CLEAR
	   }
#endif
	od
}

/* one tick: every message's carried lease remaining ages */
inline age(ch) {
	x_n = len(net[ch]);
	do
	:: x_n > 0 ->
		net[ch]?m_t, m_e, m_a, m_b, m_c;
		if
		:: m_t == LREQ && m_a > 0 -> m_a--
		:: else -> skip
		fi;
		net[ch]!m_t, m_e, m_a, m_b, m_c;
		x_n--
	:: else -> break
	od
}

#define DEC(x) if :: x > 0 -> x-- :: else -> skip fi
/* an expired grant's holder matters only to a later restart */
#define FORGET(v) if :: grem[v] == 0 && crashes == MAXCRASH -> gholder[v] = NONE :: else -> skip fi

proctype clock()
{
	do
	:: d_step {
		printf("-- tick\n");
		/* narration of what expires at this tick */
		x_k = 0;
		do
		:: x_k < 3 ->
			if :: x_k != W && role[x_k] == PRIMARY && lease[x_k] == 1 -> SAY(x_k)(LEASE_END_TEXT) :: else -> skip fi;
			if :: gholder[x_k] != NONE && gholder[x_k] != x_k && grem[x_k] == 1 -> SAY(x_k)(" grant to "); pname(gholder[x_k]); printf(" expires\n") :: else -> skip fi;
			x_k++
		:: else -> break
		od;
#ifndef BROKEN_EXPIRY
		DEC(lease[EU]); DEC(lease[US]);
#endif
		DEC(heard[EU]); DEC(heard[US]);
		DEC(grem[EU]); DEC(grem[US]); DEC(grem[W]);
		FORGET(EU); FORGET(US); FORGET(W);
		age(CH(EU, US)); age(CH(EU, W)); age(CH(US, EU)); age(CH(US, W));
		CLEAR; x_n = 0; x_k = 0
	   }
	od
}

/* P1, P2 (every primary holds every global-acked entry), P3 */
#define HOLDS(x, p) (gack[p] == 0 || lg[x].e[p] == gack[p])
#define MATCH(p)    (lg[EU].e[p] == 0 || lg[EU].e[p] != lg[US].e[p] || lg[EU].e[p - 1] == lg[US].e[p - 1])

proctype monitor()
{
	do
	:: d_step {
#ifndef NO_P1
		assert(!(ACCEPTING(EU) && ACCEPTING(US)));                       /* P1 */
#endif
		x_k = 1;
		do
		:: x_k <= MAXPOS ->
			assert(role[EU] != PRIMARY || HOLDS(EU, x_k));               /* P2 */
			assert(role[US] != PRIMARY || HOLDS(US, x_k));               /* P2 */
			assert(MATCH(x_k));                                          /* P3 */
			x_k++
		:: else -> break
		od;
		x_k = 0
	   }
	od
}

init {
	atomic {
		/* epoch 1: EU primary, US secondary following it, no grants yet */
		role[EU] = PRIMARY; epoch[EU] = 1; synced[EU] = 1;
		role[US] = SECONDARY; synced[US] = 1;
		promised[EU] = 1; promised[US] = 1; promised[W] = 1;
		gholder[EU] = NONE; gholder[US] = NONE; gholder[W] = NONE;
		printf("  EU is primary of epoch 1 (no lease yet), US its secondary, W the witness\n");
		run region(EU); run region(US); run witness(W); run clock(); run monitor()
	}
}
