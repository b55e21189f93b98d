/* unmatched.h — the first files a process created that matched no checkpoint glob.
 *
 * When `ckmon run` records nothing, the likeliest reason is a glob that does not match
 * what the program writes. Under `ckmon run` (CKMON_UNMATCHED=1, config.h) the agent
 * notes, at open, the first few files a process creates that no glob matches, and a process that wrote no checkpoint says
 * them in one message at exit, so the collector can name them. Writes are untouched:
 * this costs a few comparisons per file created, and nothing once the slots are full
 * but a counter.
 */
#ifndef CKMON_UNMATCHED_H
#define CKMON_UNMATCHED_H

/* A file was opened for writing anew (created or truncated) at abs_path, which matched
 * no glob. */
void unmatched_note(const char *abs_path);
/* At exit: sends what was noted, if anything. */
void unmatched_report(void);
/* In a forked child: what its parent created is the parent's to say. */
void unmatched_after_fork_child(void);

#endif
