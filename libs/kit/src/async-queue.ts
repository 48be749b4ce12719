/**
 * A single-consumer async queue: producers `push`, the consumer iterates with `for await`.
 * Used to feed a client-streaming gRPC request from code that decides what to send as results
 * come back. `close()` ends the iteration after the queued items; `fail(err)` makes the next
 * read throw. The producer bounds the queue itself (it knows its window); `length` tells it.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | null = null;
  private closed = false;
  private error: Error | null = null;

  /** Items queued and not yet read. */
  get length(): number {
    return this.items.length;
  }

  /** Queues an item (ignored after close/fail). */
  push(item: T): void {
    if (this.closed || this.error !== null) return;
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      w.resolve({ value: item, done: false });
    } else this.items.push(item);
  }

  /** Ends the iteration once the queued items are read. */
  close(): void {
    this.closed = true;
    if (this.waiter && this.items.length === 0) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve({ value: undefined, done: true });
    }
  }

  /** Makes the consumer's next read throw `err` (queued items are dropped). */
  fail(err: unknown): void {
    this.error = err instanceof Error ? err : new Error(String(err));
    this.items.length = 0;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.reject(this.error);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.error !== null) return Promise.reject(this.error);
        if (this.items.length > 0) return Promise.resolve({ value: this.items.shift() as T, done: false });
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          this.waiter = { resolve, reject };
        });
      },
      return: () => {
        this.close();
        this.items.length = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
