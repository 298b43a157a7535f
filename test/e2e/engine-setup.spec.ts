// Issue 12, item 1: the New run page says which methods each engine trains, and with the pytorch engine
// chosen and its environment missing, "Set up the PyTorch engine" runs the set-up (engines.pytorch), shows
// pip's lines while it runs, then the torch version and accelerator found, or the one error that says what
// to install. Against the in-page stand-in (fake-workbench.ts); the service is tested in test/unit.
import { expect, test } from '@playwright/test';
import { engineMethods } from '../../src-shared/config.ts';
import { methodDescriptors } from '../../src-shared/methods.ts';
import { openFake } from './fake-page.ts';

const labelsOf = (engine: 'tfjs' | 'pytorch') =>
  methodDescriptors
    .filter((m) => engineMethods[engine].includes(m.id))
    .map((m) => m.label)
    .join(', ');

test("the engine choice lists each engine's methods; Set up shows pip's lines, then torch and the accelerator", async ({ page }) => {
  await openFake(page, '#/runs/new');
  await expect(page.getByTestId('engine-methods-tfjs')).toHaveText(`tfjs trains ${labelsOf('tfjs')}`);
  await expect(page.getByTestId('engine-methods-pytorch')).toHaveText(`pytorch trains ${labelsOf('pytorch')}`);
  // tfjs (the default) needs no set-up: no button.
  await expect(page.getByTestId('pytorch-setup')).toHaveCount(0);

  await page.getByTestId('engine-select').selectOption('pytorch');
  await expect(page.getByTestId('pytorch-not-ready')).toContainText('No Python environment at /data/engines/pytorch.');
  await page.getByTestId('pytorch-setup').click();
  await expect(page.getByTestId('pytorch-setup')).toHaveText('Setting up the PyTorch engine…');
  await expect(page.getByTestId('pytorch-setup-log')).toContainText('Collecting torch');
  await expect(page.getByTestId('pytorch-ready')).toHaveText('PyTorch engine set up: torch 2.13.0+cu128 on cuda (NVIDIA GeForce RTX 4090), Python 3.11.2.');
  await expect(page.getByTestId('pytorch-setup')).toHaveCount(0);
  await expect(page.getByTestId('pytorch-setup-log')).toHaveCount(0);
});

test('without Python the set-up ends in the one error that says what to install', async ({ page }) => {
  const missing = 'No Python 3.9 or newer was found. Install Python 3 with venv and pip, then try again.';
  await openFake(page, '#/runs/new', { pytorchSetupError: missing });
  await page.getByTestId('engine-select').selectOption('pytorch');
  await page.getByTestId('pytorch-setup').click();
  await expect(page.getByTestId('pytorch-setup-error-message')).toHaveText(missing);
  await expect(page.getByTestId('pytorch-setup-log')).toContainText('Installing into /data/engines/pytorch');
  // The button stays, to try again once Python is installed.
  await expect(page.getByTestId('pytorch-setup')).toHaveText('Set up the PyTorch engine');
});
