// The page for an unknown address: translated text and the language switch only.
import { initShell } from './common.js';

initShell();
