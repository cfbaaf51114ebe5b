/**
 * Galata's configuration (as the JupyterLab extension template's): it starts `jlpm start` and runs
 * the tests against it. Chromium: Debian's, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 (see DESIGN.md).
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

module.exports = {
  ...baseConfig,
  use: {
    ...baseConfig.use,
    launchOptions: {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run']
    }
  },
  webServer: {
    command: 'jlpm start',
    url: 'http://localhost:8888/lab',
    timeout: 120 * 1000,
    reuseExistingServer: !process.env.CI
  }
};
