/* wire.h — the messages an agent sends to its collector.
 *
 * Transport: a Unix-domain SOCK_SEQPACKET connection, so every message is one packet
 * (no framing to get wrong) and the collector sees EOF when a process dies, which is
 * how a torn checkpoint is noticed. Each packet is one JSON object with a "t" member
 * naming its kind. A process opens its connection lazily, at its first checkpoint, and
 * says hello first. File ids are unique within one connection.
 *
 *   hello   {"t":"hello","pid":123,"program":"python3","host":"h","job":"j","run":"r",
 *            "rank":3,"local_rank":1,"world_size":8,"sample":0.1,"keys":["epoch"]}
 *                                              run, rank, local_rank, world_size only
 *                                              when known (CKMON_RUN_ID, launchers);
 *                                              sample and keys (CKMON_SAMPLE, CKMON_KEYS)
 *                                              for the files the collector parses itself
 *                                              "dropped":N when N messages were lost (no
 *                                              collector, queue full) since the last hello
 *   open    {"t":"open","id":7,"path":"/abs/x.pt","time_us":1700000000123456}
 *   data    {"t":"data","id":7,"bytes":4096,"writes":3,"format":"pickle",
 *            "values":{...},"tensors":[...],"errors":[...]}
 *                                              progress (sent when the format is
 *                                              decided, and at most every 250 ms) and
 *                                              findings so far, each part optional;
 *                                              the collector merges them in order.
 *                                              "reset":true first discards the findings
 *                                              so far (the file is being parsed again)
 *   close   {"t":"close","id":7,"time_us":...,"path":"/abs/final","written_as":"/abs/tmp",
 *            "format":"pickle","bytes":N,"writes":N,"seconds":0.01,"complete":true,
 *            "parsed":"stream"}
 *                                              written_as only when renamed while open;
 *                                              parsed "reread" when the agent parsed the
 *                                              finished file again
 *   rename  {"t":"rename","from":"/abs/x.tmp","to":"/abs/x.pt"}
 *                                              a checkpoint this process closed less than
 *                                              RENAME_WINDOW_US ago was renamed
 *   exec    {"t":"exec","kept":[7]}       the process is about to exec: the new program
 *                                              keeps files 7 (its agent reports them); exec
 *                                              closes the others, so when this connection
 *                                              ends the collector parses them from disk
 *   exec_failed {"t":"exec_failed"}            it did not happen after all
 *   adopt   {"t":"adopt","from":"/abs/x.tmp","to":"/abs/x.pt","time_us":...}
 *                                              a file that matched no glob was renamed
 *                                              onto a checkpoint name: the collector
 *                                              parses the finished file from disk
 *
 * A file still open when its connection ends is torn: the collector writes its record
 * with "complete": false and the size on disk, and when the agent had found nothing in
 * it yet, parses what is on disk itself (up to 256 MiB).
 *
 * A data or close message for an id the collector never saw opened (the connection was
 * replaced while the file was open) starts a record from what the message carries.
 *
 * The collector holds a closed record for RENAME_WINDOW_US so that a rename (from any
 * process) can still give it its final path, then writes it.
 */
#ifndef CKMON_WIRE_H
#define CKMON_WIRE_H

#define WIRE_MAX_MESSAGE (64 * 1024) /* a data message is split to stay under this */
#define RENAME_WINDOW_US 1000000LL   /* the contract: "after a rename within 1 s of close" */

#endif
