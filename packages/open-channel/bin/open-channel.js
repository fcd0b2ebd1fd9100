#!/usr/bin/env node
"use strict";
// `npx open-channel status NAME`, `npx open-channel list`: see `open-channel --help`.
require("../dist/cli.js").main();
