import type { PeerCertificate } from 'node:tls';

import { ServerInterceptingCall, ServerListenerBuilder } from '@grpc/grpc-js';
import type { Metadata as GrpcMetadata, ServerInterceptor } from '@grpc/grpc-js';

/**
 * Internal metadata key with the identities (subject CN and SANs) of the verified client
 * certificate, comma-separated. grpc-js keeps the TLS peer away from nice-grpc handlers; an
 * interceptor copies it here.
 */
export const PEER_IDENTITY_METADATA_KEY = 'x-curia-peer-identity';

/**
 * grpc-js server interceptor exposing the client certificate's identities to the auth middleware.
 * grpc-js reports a peer certificate only when TLS verified it against the client CA, also when
 * client certificates are optional: a certificate another CA signed never lends its name (the
 * optional-certificate test pins this down).
 */
export function peerIdentityInterceptor(): ServerInterceptor {
  return (_method, call) =>
    new ServerInterceptingCall(call, {
      start: (next) => {
        next(
          new ServerListenerBuilder()
            .withOnReceiveMetadata((metadata: GrpcMetadata, mdNext) => {
              metadata.remove(PEER_IDENTITY_METADATA_KEY); // never trust a caller-supplied value
              const cert = call.getAuthContext().sslPeerCertificate;
              const ids = certificateIdentities(cert);
              if (ids.length > 0) metadata.set(PEER_IDENTITY_METADATA_KEY, ids.join(','));
              mdNext(metadata);
            })
            .build(),
        );
      },
    });
}

/** Subject CN and every DNS/URI SAN of a peer certificate (empty when there is none). */
export function certificateIdentities(cert: PeerCertificate | undefined): string[] {
  if (!cert || Object.keys(cert).length === 0) return [];
  const ids: string[] = [];
  const cn = cert.subject?.CN;
  if (typeof cn === 'string' && cn) ids.push(cn);
  for (const san of (cert.subjectaltname ?? '').split(',')) {
    const m = /^\s*(DNS|URI):(.+?)\s*$/.exec(san);
    if (m?.[2]) ids.push(m[2]);
  }
  return [...new Set(ids)].filter((id) => !id.includes(','));
}
