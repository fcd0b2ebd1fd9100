// PM2 on each machine: 2 instances of app.js in cluster mode, in the fleet's one channel.
//   REDIS_URL=redis://:password@10.0.0.9:6379 ADVERTISE=10.0.0.5 \
//   TLS_CA=/etc/fleet/ca.pem TLS_CERT=/etc/fleet/node.pem TLS_KEY=/etc/fleet/node-key.pem \
//     npx pm2 start examples/redis-fleet/ecosystem.config.js
module.exports = {
  apps: [
    {
      name: "open-channel-fleet",
      script: "./app.js",
      cwd: __dirname,
      exec_mode: "cluster",
      instances: 2,
      // PM2 passes its own environment on: REDIS_URL, ADVERTISE and TLS_* (or CHANNEL_SECRET) come from the shell.
    },
  ],
};
