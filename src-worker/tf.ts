// The engine's one import of TensorFlow.js. Everything in src-worker takes `tf` from here.
//
// tfjs-core's Node build leaves out two pieces its package only ships as extensionless ES modules
// (which Node cannot load): the gradient registry entries (without them tf.variableGrads fails with
// "gradient function not found for Mean") and the chained ops (x.add(y)). The @tensorflow/tfjs
// union package bundles both into its Node build and registers them on the shared engine, so it is
// loaded for that side effect. The CPU backend is loaded so that a backend always exists; faster
// ones are chosen by backend.ts.
import { env } from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs';
// Types of the chained ops the import above installs at runtime.
import type {} from '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';

// PROD only silences tfjs's console notices; the one that matters ("install tfjs-node") is wrong
// advice here, because backend.ts already tries every installed backend and reports what it found.
env().set('PROD', true);

export * as tf from '@tensorflow/tfjs-core';
