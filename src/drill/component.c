/*
 * component.c - the drill's child processes: the deployment's components
 * (`tandem region`, `tandem witness`), each with stdout and stderr appended
 * to its own log, and short commands (`tandem init`, `tandem verify`,
 * `nft`, `ip`) run to completion.
 *
 * The drill forks while its workload thread runs, so between fork and exec
 * a child only makes async-signal-safe calls; everything it needs (argv,
 * environment, program path) is prepared before the fork. A child closes
 * every inherited descriptor but its own (the workload's sockets must not
 * outlive their connections in a child), and runs in its own process group
 * so a Ctrl-C reaches only the drill, which then stops them in order.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "drill/internal.h"

extern char **environ;

#define READY_FD 3

int component_self(char *out, size_t cap)
{
	/* not the path it points to: a binary rebuilt during the drill leaves
	 * that path to a new file (and this process's to "... (deleted)");
	 * /proc/self/exe is, in every child before its exec, exactly the binary
	 * running the drill */
	if (access("/proc/self/exe", X_OK) != 0)
		return -1;
	snprintf(out, cap, "/proc/self/exe");
	return 0;
}

/* environ without TANDEM_READY_FD, plus extra (may be NULL); malloc'd array
 * of borrowed strings (the extra one included). */
static char **child_environment(char *extra)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 2, sizeof *env);
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "TANDEM_READY_FD=", 16) != 0)
			env[k++] = environ[i];
	if (extra)
		env[k++] = extra;
	env[k] = NULL;
	return env;
}

/* In the child: close every descriptor from `from` up. */
static void child_close_from(int from)
{
	if (close_range((unsigned)from, ~0U, 0) == 0)
		return;
	for (int fd = from; fd < 65536; fd++)
		close(fd);
}

/* One JSON line of the drill's own into a component's log (start, kill). */
static void log_note(const char *path, const char *component, const char *msg, pid_t pid)
{
	char ts[32], line[512];
	util_iso8601(util_now_ms(), ts);
	int n = snprintf(line, sizeof line,
			 "{\"time\":\"%s\",\"level\":\"info\",\"component\":\"drill\",\"msg\":\"%s\","
			 "\"target\":\"%s\",\"pid\":%d}\n",
			 ts, msg, component, (int)pid);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	ssize_t unused = write(fd, line, (size_t)n);
	(void)unused; /* a note missing from a log is not worth failing for */
	close(fd);
}

/* The last non-empty line of a file, for error messages. */
static void last_line(const char *path, char *out, size_t cap)
{
	out[0] = '\0';
	size_t len;
	char *text = util_read_file(path, 16 << 20, &len);
	if (!text)
		return;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	char *nl = strrchr(text, '\n');
	snprintf(out, cap, "%s", nl ? nl + 1 : text);
	free(text);
}

int component_start(drill_component *c, const char *config_path, int timeout_ms, char *err,
		    size_t errcap)
{
	char self[PATH_MAX];
	if (component_self(self, sizeof self) != 0) {
		snprintf(err, errcap, "cannot find this executable: %s", strerror(errno));
		return -1;
	}
	char *argv[8];
	int k = 0;
	argv[k++] = "tandem";
	argv[k++] = c->is_witness ? "witness" : c->is_edge ? "edge" : "region";
	argv[k++] = "--config";
	argv[k++] = (char *)config_path;
	if (!c->is_witness) {
		argv[k++] = c->is_edge ? "--name" : "--region";
		argv[k++] = c->name;
	}
	argv[k] = NULL;
	static char ready_env[] = "TANDEM_READY_FD=3";
	char **env = child_environment(ready_env);
	int logfd = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int fds[2] = {-1, -1};
	if (!env || logfd < 0 || nullfd < 0 || pipe2(fds, O_CLOEXEC) != 0) {
		snprintf(err, errcap, "%s: cannot prepare its start: %s", c->name, strerror(errno));
		goto fail;
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errcap, "fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		setpgid(0, 0);
		/* a drill that dies (even by kill -9) takes its deployment with it:
		 * an orphaned drill deployment serves nobody. (Set by the main
		 * thread's fork, which lives as long as the drill.) */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		dup2(nullfd, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		if (fds[1] == READY_FD)
			fcntl(READY_FD, F_SETFD, 0);
		else
			dup2(fds[1], READY_FD);
		child_close_from(READY_FD + 1);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execve(self, argv, env);
		_exit(127);
	}
	free(env);
	env = NULL;
	close(fds[1]);
	fds[1] = -1;
	close(logfd);
	logfd = -1;
	close(nullfd);
	nullfd = -1;
	c->pid = pid;
	c->alive = 1;
	c->killed = 0;
	c->starts++;
	log_note(c->log_path, c->name, "started by the drill", pid);

	char line[32] = "";
	size_t got = 0;
	int64_t deadline = util_mono_us() + (int64_t)timeout_ms * 1000;
	for (;;) {
		int64_t left = (deadline - util_mono_us()) / 1000;
		if (left <= 0)
			break;
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		int rc = poll(&p, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			break;
		ssize_t n = read(fds[0], line + got, sizeof line - 1 - got);
		if (n <= 0)
			break; /* the child closed the pipe: it exited (or closed it unready) */
		got += (size_t)n;
		line[got] = '\0';
		if (strchr(line, '\n') || got == sizeof line - 1)
			break;
	}
	close(fds[0]);
	fds[0] = -1;
	if (strncmp(line, "ready", 5) == 0)
		return 0;
	char last[300], how[64];
	if (component_reap(c)) {
		int st = c->last_status;
		snprintf(how, sizeof how, "exited (%s %d) before it was ready",
			 WIFSIGNALED(st) ? "signal" : "status", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	} else {
		snprintf(how, sizeof how, "was not ready within %d ms", timeout_ms);
		component_stop(c, 2000);
	}
	last_line(c->log_path, last, sizeof last);
	snprintf(err, errcap, "%s %s (its log %s ends with: %s)", c->name, how, c->log_path,
		 last[0] ? last : "nothing");
	return -1;
fail:
	free(env);
	if (logfd >= 0)
		close(logfd);
	if (nullfd >= 0)
		close(nullfd);
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	return -1;
}

int component_reap(drill_component *c)
{
	if (!c->alive)
		return 1;
	int status;
	pid_t r = waitpid(c->pid, &status, WNOHANG);
	if (r == c->pid || (r < 0 && errno == ECHILD)) {
		c->alive = 0;
		c->last_status = r == c->pid ? status : 0;
		return 1;
	}
	return 0;
}

int component_signal(drill_component *c, int sig)
{
	if (!c->alive)
		return -1;
	if (sig == SIGKILL)
		log_note(c->log_path, c->name, "kill -9 by the drill", c->pid);
	if (kill(c->pid, sig) != 0)
		return -1;
	if (sig == SIGKILL) {
		int status;
		while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
			;
		c->alive = 0;
		c->killed = 1;
		c->last_status = status;
	}
	return 0;
}

int component_stop(drill_component *c, int timeout_ms)
{
	if (!c->alive)
		return -1;
	log_note(c->log_path, c->name, "stopped by the drill (SIGTERM)", c->pid);
	kill(c->pid, SIGTERM);
	for (int waited = 0; waited < timeout_ms; waited += 20) {
		if (component_reap(c))
			return c->last_status;
		usleep(20000);
	}
	log_note(c->log_path, c->name, "did not stop in time: kill -9 by the drill", c->pid);
	component_signal(c, SIGKILL);
	return c->last_status;
}

/* argv0 as an executable path (PATH, then the sbin directories root tools
 * live in); 0 or -1. */
static int resolve_program(const char *name, char *out, size_t cap)
{
	if (strchr(name, '/')) {
		snprintf(out, cap, "%s", name);
		return access(out, X_OK) == 0 ? 0 : -1;
	}
	const char *path = getenv("PATH");
	char all[4096];
	snprintf(all, sizeof all, "%s:/usr/sbin:/sbin:/usr/bin:/bin", path ? path : "");
	char *save = NULL;
	for (char *dir = strtok_r(all, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		if (snprintf(out, cap, "%s/%s", dir, name) >= (int)cap)
			continue;
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -1;
}

int command_run(char *const argv[], const char *input, buf *out, const char *log_path,
		int timeout_ms)
{
	char program[PATH_MAX];
	if (resolve_program(argv[0], program, sizeof program) != 0) {
		if (out)
			buf_printf(out, "%s: not found\n", argv[0]);
		return 127;
	}
	char **env = child_environment(NULL);
	int in[2] = {-1, -1}, o[2] = {-1, -1};
	if (!env || pipe2(in, O_CLOEXEC) != 0 || pipe2(o, O_CLOEXEC) != 0) {
		free(env);
		for (int i = 0; i < 2; i++) {
			if (in[i] >= 0)
				close(in[i]);
			if (o[i] >= 0)
				close(o[i]);
		}
		return 127;
	}
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		dup2(in[0], 0);
		dup2(o[1], 1);
		dup2(o[1], 2);
		child_close_from(3);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execve(program, argv, env);
		_exit(127);
	}
	free(env);
	close(in[0]);
	close(o[1]);
	if (pid < 0) {
		close(in[1]);
		close(o[0]);
		return 127;
	}
	if (input) {
		size_t len = strlen(input), done = 0;
		while (done < len) { /* our inputs are small (rule sets): no deadlock on the pipe */
			ssize_t n = write(in[1], input + done, len - done);
			if (n <= 0)
				break;
			done += (size_t)n;
		}
	}
	close(in[1]);
	int logfd = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
	if (logfd >= 0) {
		char head[1024];
		int n = snprintf(head, sizeof head, "$");
		for (int i = 0; argv[i] && n < (int)sizeof head - 2; i++)
			n += snprintf(head + n, sizeof head - (size_t)n, " %s",
				      i == 0 && strcmp(argv[0], "/proc/self/exe") == 0 ? "tandem" : argv[i]);
		if (n > (int)sizeof head - 2)
			n = (int)sizeof head - 2;
		head[n++] = '\n';
		ssize_t unused = write(logfd, head, (size_t)n);
		(void)unused;
	}
	int64_t deadline = util_mono_us() + (int64_t)timeout_ms * 1000;
	int timed_out = 0;
	for (;;) {
		int64_t left = (deadline - util_mono_us()) / 1000;
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		struct pollfd p = {.fd = o[0], .events = POLLIN};
		int rc = poll(&p, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc == 0) {
			timed_out = 1;
			break;
		}
		char chunk[4096];
		ssize_t n = read(o[0], chunk, sizeof chunk);
		if (n <= 0)
			break;
		if (out)
			buf_add(out, chunk, (size_t)n); /* beyond its max: the rest is dropped */
		if (logfd >= 0) {
			ssize_t unused = write(logfd, chunk, (size_t)n);
			(void)unused;
		}
	}
	close(o[0]);
	if (logfd >= 0)
		close(logfd);
	if (timed_out)
		kill(pid, SIGKILL);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (timed_out)
		return 124;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
