/** The current connection as the requests and the topics see it (onebox.ts owns the socket). */

export type Frame = Record<string, any>;

export interface Link {
  /** Send one frame (dropped if the socket is already closing: its close event follows). */
  send(frame: Frame): void;
  /** The socket is open. */
  open: boolean;
  /** The server's `hello` arrived. */
  hello: boolean;
  /** Every topic's `sub` of the first batch is answered: requests may go. */
  ready: boolean;
  /** `sub` frames sent on this link and not yet answered. */
  subsInFlight: number;
}
