export * from './channel.js';
export * from './client-factory.js';
export * from './deadline-header.js';
export * from './targets-file.js';
export { ClientError, Status, Metadata, type Channel, type Client } from 'nice-grpc';
export * from '@curia/proto';
export * from './study.js';
export * from './tensor-wire.js';
