/**
 * A tiny JSON-encoded service definition in ts-proto's generic-definition shape, used only by
 * the kit's own tests so they exercise the real server stack without depending on the product
 * contracts.
 */
export interface EchoMessage {
  text?: string;
  /** Handler sleeps this long (observing cancellation). */
  delayMs?: number;
  /** Number of messages a streaming call emits. */
  count?: number;
  /** Size of a filler payload, characters. */
  padding?: number;
  /** Error the handler throws: a CuriaError code, or 'BOOM' for a plain Error. */
  fail?: string;
  /** Key for attempt counting in retry tests. */
  key?: string;
  /** A caller's study id (audit tests: it must appear only hashed). */
  studyId?: string;
  /** Set by the server: attempt number for `key`, deadline seen, etc. */
  attempt?: number;
  deadlineMs?: number;
  traceId?: string;
}

const json = {
  encode: (m: EchoMessage) => ({ finish: () => new TextEncoder().encode(JSON.stringify(m)) }),
  decode: (b: Uint8Array): EchoMessage => JSON.parse(new TextDecoder().decode(b)) as EchoMessage,
  fromPartial: (m: EchoMessage): EchoMessage => m,
};

function method<RS extends boolean, S extends boolean>(
  name: string,
  requestStream: RS,
  responseStream: S,
  idempotencyLevel?: 'IDEMPOTENT',
) {
  return {
    name,
    requestType: json,
    requestStream,
    responseType: json,
    responseStream,
    options: idempotencyLevel ? { idempotencyLevel } : {},
  };
}

/** The test service: `curia.test.v1.EchoService`. */
export const EchoDefinition = {
  name: 'EchoService',
  fullName: 'curia.test.v1.EchoService',
  methods: {
    unary: method('Unary', false, false, 'IDEMPOTENT'),
    mutate: method('Mutate', false, false),
    serverStream: method('ServerStream', false, true),
  },
};
