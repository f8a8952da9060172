/*
 * Storage errors, typed by `code` so callers branch on it rather than on message text.
 */

export type StorageErrorCode =
  /** The live records plus the new one do not fit the region even after compaction. */
  | 'flash-full'
  /** One record larger than a sector/block can ever hold. */
  | 'too-large'
  /** A region too small or misaligned for the layout asked for. */
  | 'layout'
  /** A stored record that fails its CRC or does not decode. */
  | 'corrupt';

export class StorageError extends Error {
  // Class field, not an assignment to name in the constructor: Error.prototype is frozen on Moddable after preload.
  override readonly name: string = 'StorageError';
  readonly code: StorageErrorCode;
  constructor(code: StorageErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
