export * from './api.ts';
export * from './config.ts';
export * from './errors.ts';
export * from './methods.ts';
export * from './runs.ts';
export * from './worker-protocol.ts';
export * from './transport.ts';
