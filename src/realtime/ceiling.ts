/**
 * The connection ceiling of one process. Unless MAX_CONNECTIONS is set, it is the soft
 * open-file limit minus a reserve for the database, logs, HTTP clients and upstream
 * sockets, so that an upgrade is refused with a 503 long before accept() meets EMFILE.
 */

/** Reserve: 10% of the limit, at least 128 descriptors. */
export function deriveCeiling(limit: number | undefined): number {
  if (limit === undefined) return 1000;
  return Math.max(1, limit - Math.max(128, Math.ceil(limit * 0.1)));
}
