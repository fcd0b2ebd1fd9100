// PM2 ecosystem file: 4 instances of app.js in cluster mode, sharing one open-channel channel.
//   npx pm2 start examples/pm2/ecosystem.config.js && npx pm2 logs open-channel-example
module.exports = {
  apps: [
    {
      name: "open-channel-example",
      script: "./app.js",
      cwd: __dirname,
      exec_mode: "cluster",
      instances: 4,
      env: { OC_CHANNEL: "pm2-example" },
    },
  ],
};
